"""Noticing that the model sent the same thing again, whatever stage rejected it.

Small models repeat themselves: the same reply, or the same function laid out differently
(another docstring layout, other comments, other blank lines). `normalised_hash` gives such
variants one hash, for code that parses (via the syntax tree) and for code that does not
(via its tokens), so a repeat is caught before any stage runs again:

- code that parses: the tree with every docstring emptied, unparsed (`ast.unparse` drops
  comments and formatting);
- code that does not parse: its tokens without comments, blank lines and spacing, so a
  byte-identical or merely re-spaced syntax error hashes the same;
- a reply with no code in it: the reply with its whitespace collapsed (`reply_key`).
"""

from __future__ import annotations

import ast
import hashlib
import io
import textwrap
import tokenize

from symbiont import pyast

__all__ = ["normalised_hash", "repeat_key"]

_SKIPPED_TOKENS = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER})


def _digest(kind: str, text: str) -> str:
    data = f"{kind}\0{text}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:16]


def normalised_hash(source: str) -> str:
    """One hash for a source and its variants in docstrings, comments and whitespace."""
    try:
        tree = pyast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return _digest("tokens", _token_text(source))
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                body[0].value.value = ""  # a docstring's wording and layout do not matter
    try:
        return _digest("ast", ast.unparse(tree))
    except (ValueError, RecursionError):  # a tree unparse cannot render: fall back to tokens
        return _digest("tokens", _token_text(source))


def _token_text(source: str) -> str:
    """The source's tokens, without comments and blank lines, one logical line per line.

    Indentation survives as INDENT/DEDENT markers; where the tokenizer gives up (an
    unterminated string, an inconsistent dedent), the rest is kept line by line, stripped.
    """
    out: list[str] = []
    consumed_lines = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in _SKIPPED_TOKENS:
                continue
            consumed_lines = tok.end[0]
            if tok.type == tokenize.NEWLINE:
                out.append("\n")
            elif tok.type == tokenize.INDENT:
                out.append("<indent>")
            elif tok.type == tokenize.DEDENT:
                out.append("<dedent>")
            else:
                out.append(tok.string + " ")
    except (tokenize.TokenError, SyntaxError):
        # From the last line a token came from: the failing token may start on it.
        rest = source.splitlines()[max(consumed_lines - 1, 0) :]
        out.append("<untokenised>\n")
        out.extend(
            line.strip() + "\n"
            for line in rest
            if line.strip() and not line.lstrip().startswith("#")
        )
    return "".join(out)


def repeat_key(source: str, reply: str) -> str:
    """What identifies an attempt for repeat detection: its code when some was extracted,
    else the whole reply with whitespace collapsed."""
    if source.strip():
        return normalised_hash(source)
    return _digest("reply", " ".join(reply.split()))
