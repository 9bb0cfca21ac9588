"""Stage 2, parse: the candidate as an `ast.Module`, or a syntax diagnostic with a caret.

Besides `ast.parse`, the source is compiled once: some errors are only found by the
compiler (`return` or `await` outside a function, `break` outside a loop, a misplaced
`from __future__` import), and the model should hear about them here, as syntax, with the
line and column, rather than later as an obscure compile failure.

Python warns about some candidate text while parsing or compiling it (`"a" is "a"`, an
invalid escape such as `"\\d"`). Those `SyntaxWarning`s (and `DeprecationWarning`s, as 3.11
calls the invalid escape) are about the model's code, not the program's:
`quiet_syntax_warnings` keeps them off the program's stderr with warnings filters that match
only the pseudo filenames candidates are parsed under (`<unknown>`, the default of
`ast.parse`, `<candidate>`, `<symbiont ...>`, `<capability ...>`, `<mutation ...>`). That is
thread-safe (no `catch_warnings` swapping the process's filters while other threads run) and
leaves every other warning alone.
"""

from __future__ import annotations

import ast
import re
import textwrap
import types
import warnings
from collections.abc import Iterable, Iterator

from symbiont import pyast
from symbiont.diagnostics import Diagnostic, caret_excerpt
from symbiont.errors import StageError

_CANDIDATE_FILES = r"<(unknown|candidate|symbiont |capability |mutation )"
_QUIETED = (SyntaxWarning, DeprecationWarning)  # 3.11 reports `"\\d"` as the latter


def quiet_syntax_warnings() -> None:
    """Make sure the filters that drop candidates' compile-time warnings are in place (cheap;
    they are put back if the program reset the warnings filters)."""
    present = {
        category
        for action, _message, category, module, _lineno in warnings.filters
        if action == "ignore" and module is not None and module.pattern == _CANDIDATE_FILES
    }
    for category in _QUIETED:
        if category not in present:
            warnings.filterwarnings("ignore", category=category, module=_CANDIDATE_FILES)


def parse_source(
    source: str, filename: str = "<candidate>", *, tree: ast.Module | None = None
) -> ast.Module:
    """Parse (and trial-compile) `source`; raise `StageError` with a `parse/*` diagnostic.

    `tree`: `ast.parse(source, filename)`, when the caller parsed it already (and changed
    nothing in it); then only the checks the parser does not make run, and `tree` is
    returned (see `symbiont.pipeline.Extracted`)."""
    return parse_and_compile(source, filename, tree=tree)[0]


def parse_and_compile(
    source: str, filename: str = "<candidate>", *, tree: ast.Module | None = None
) -> tuple[ast.Module, types.CodeType]:
    """`parse_source`, and the module code its trial compile made (`compile(tree, filename,
    "exec", dont_inherit=True)`), which the compile stage can use (`compile_candidate`'s
    `module_code`)."""
    quiet_syntax_warnings()
    if "\x00" in source:
        line = source.count("\n", 0, source.index("\x00")) + 1
        col = source.index("\x00") - (source.rfind("\n", 0, source.index("\x00")) + 1) + 1
        raise StageError(
            [
                Diagnostic(
                    "parse",
                    "null_byte",
                    "the code contains a null byte (\\x00); send plain text Python source",
                    line,
                    col,
                    caret_excerpt(source.replace("\x00", "\N{SYMBOL FOR NULL}"), line, col),
                )
            ]
        )
    try:
        if tree is None:
            tree = pyast.parse(source, filename=filename)
        code = pyast.compile_tree(tree, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise StageError([syntax_diagnostic(exc, source)]) from None
    except (MemoryError, RecursionError):
        raise StageError(
            [
                Diagnostic(
                    "parse",
                    "too_complex",
                    "the code is nested too deeply for Python's parser; write it with less nesting",
                )
            ]
        ) from None
    except ValueError as exc:  # e.g. surrogates the compiler cannot encode
        raise StageError(
            [Diagnostic("parse", "invalid_source", f"the code cannot be read: {exc}")]
        ) from None
    return tree, code


_QUOTE_RUN = re.compile(r"\"{3,}|'{3,}")


def _flat(text: str) -> str:
    """Whitespace collapsed, and runs of more than three quotes cut to three (a small model
    copies the three quotes that open a docstring as four or five)."""
    return " ".join(_QUOTE_RUN.sub(lambda m: m.group(0)[:3], text).split())


def restore_head(source: str, name: str, heads: Iterable[str]) -> str | None:
    """`source` with the function's head (its `def` line(s) and docstring) put back exactly
    as given, when the model copied one of `heads` with only its layout changed.

    Small models copy the head they were shown and change it on the way: a docstring
    re-indented (five spaces over a body at four), its opening quotes copied as four or
    five, or the first line of the body run onto the docstring's closing line (`...
    otherwise.` then the closing quotes, then `if n == 0:`). The code is right and only the layout of text they
    were told to repeat is wrong. Code run onto the head's last line is moved to a line of
    its own, indented like the body below it. Returns None when no head matches (then the
    model's own text stands, and its error with it).
    """
    lines = source.splitlines(keepends=True)
    starts = (f"def {name}(", f"async def {name}(")
    for i, line in enumerate(lines):
        if not line.startswith(starts):
            continue
        for head in heads:
            wanted = _flat(head)
            taken = ""
            for n in range(i, len(lines)):
                before = taken
                taken += lines[n]
                flat = _flat(taken)
                fixed = head.rstrip("\n") + "\n"
                if flat == wanted:
                    return "".join(lines[:i]) + fixed + "".join(lines[n + 1 :])
                rest = _run_on(before, lines[n], wanted)
                if rest is not None:
                    below = [ln for ln in lines[n + 1 :] if ln.strip()]
                    indent = min(
                        (ln[: len(ln) - len(ln.lstrip())] for ln in below), key=len, default=""
                    ) or _body_indent(head)
                    return (
                        "".join(lines[:i]) + fixed + indent + rest + "\n" + "".join(lines[n + 1 :])
                    )
                if not wanted.startswith(flat):
                    break
    return None


def _run_on(before: str, line: str, wanted: str) -> str | None:
    """The code after the head's closing quotes on `line`, when `before` + that part of
    `line` is the head; None otherwise."""
    close = max(line.rfind('"""'), line.rfind("'''"))
    if close < 0:
        return None
    rest = line[close + 3 :].strip()
    if not rest or rest.startswith("#") or _flat(before + line[: close + 3]) != wanted:
        return None
    return rest


def _body_indent(head: str) -> str:
    for line in head.splitlines()[1:]:
        if line.strip():
            return line[: len(line) - len(line.lstrip())]
    return "    "


def layout_repairs(source: str, name: str, heads: list[str]) -> Iterator[str]:
    """Repairs of a reply that does not parse, the least change first: the head put back,
    the docstring re-indented, both; then the same with a tail that is not Python cut.
    Each is only a candidate: the caller keeps the first that parses."""
    cut = cut_tail(source, name)
    for base in (source, cut):
        if base is None:
            continue
        if base is not source:
            yield base
        head = restore_head(base, name, heads)
        if head is not None:
            yield head
        docstring = reindent_docstring(base, name)
        if docstring is not None:
            yield docstring
        if head is not None:
            both = reindent_docstring(head, name)
            if both is not None:
                yield both


_DOC_OPEN = re.compile(r"""^(\s*)([rRuUbB]{0,2})(\"\"\"|''')""")


def reindent_docstring(source: str, name: str) -> str | None:
    """`source` with the opening line of the function's docstring indented like the body
    below it, when the two differ; None when there is nothing to change.

    Only a docstring's first line takes part in Python's indentation (the rest is inside
    the string), and small models often indent it by one space more or less than the code
    they write below it. The text of the docstring is not touched.
    """
    lines = source.splitlines(keepends=True)
    starts = (f"def {name}(", f"async def {name}(")
    for i, line in enumerate(lines):
        if not line.startswith(starts):
            continue
        # the docstring opens on the first non-blank line after the `def` line(s)
        j = i + 1
        while j < len(lines) and not lines[j - 1].rstrip().endswith(":"):
            j += 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        opening = _DOC_OPEN.match(lines[j]) if j < len(lines) else None
        if opening is None:
            return None
        quote = opening.group(3)
        rest = lines[j][opening.end() :]
        k = j
        if quote not in rest:  # closes on a later line
            k = j + 1
            while k < len(lines) and quote not in lines[k]:
                k += 1
            if k == len(lines):
                return None  # never closed: not an indentation problem
        body = k + 1  # the first line of code below (comments take no part in indentation)
        while body < len(lines) and (
            not lines[body].strip() or lines[body].lstrip().startswith("#")
        ):
            body += 1
        if body == len(lines):
            return None
        indent = lines[body][: len(lines[body]) - len(lines[body].lstrip())]
        if not indent or indent == opening.group(1):
            return None
        lines[j] = indent + lines[j].lstrip()
        return "".join(lines)
    return None


_DEFINES_AT_TOP = re.compile(r"^(async\s+def|def|class)\s", re.M)


def is_body_only(source: str) -> bool:
    """Whether `source` is statements only: no function or class at its top level."""
    text = textwrap.dedent(source)
    return bool(text.strip()) and _DEFINES_AT_TOP.search(text) is None


def assemble_body(source: str, name: str, head: str) -> str | None:
    """`head` (the declared `def` line and docstring) over `source` indented as its body,
    when `source` is a body only: it defines no function or class at its top level.

    Asked for a function, a small model sometimes sends just the statements of its body
    (`if n % 15 == 0: ...` / `return str(n)`). The head it would have copied is known, so the
    function is assembled instead of refused. None when `source` defines something (a
    function under another name is the signature stage's to report)."""
    if not is_body_only(source):
        return None
    text = textwrap.dedent(source)
    head_lines = head.rstrip("\n").splitlines()
    indent = "    "
    for line in head_lines[1:]:  # the docstring's indentation, if the head has one
        if line.strip():
            indent = line[: len(line) - len(line.lstrip())] or indent
            break
    body = "".join(
        (indent + line if line.strip() else line) for line in text.splitlines(keepends=True)
    )
    return "\n".join(head_lines) + "\n" + body.rstrip("\n") + "\n"


_KEPT_AT_TOP = re.compile(r"(async\s+def|def|class|import|from)\b|@")


def cut_tail(source: str, name: str) -> str | None:
    """`source` without the top-level blocks after the function that are not definitions
    or imports, read as text; None when there are none.

    For a reply that does not parse because of what follows the function: small models
    append tests that are not even Python (`assert f(15) == 'Fizz', expected 'FizzBuzz'`).
    The usage stage (`usage.drop_trailing_usage`) cuts demonstrations from the parsed tree;
    this is its fallback for text that has no tree. Only used when the whole text does not
    parse and the cut text does.
    """
    lines = source.splitlines(keepends=True)
    starts = (f"def {name}(", f"async def {name}(")
    start = next((i for i, line in enumerate(lines) if line.startswith(starts)), None)
    if start is None:
        return None
    i = start
    while i < len(lines) and not lines[i].split("#", 1)[0].rstrip().endswith(":"):
        i += 1  # the rest of a `def` head spread over lines
    i += 1
    kept = lines[:i]
    dropping = False
    cut = False
    for line in lines[i:]:
        at_top = bool(line.strip()) and not line[0].isspace() and not line.startswith("#")
        if at_top:
            dropping = _KEPT_AT_TOP.match(line) is None
        if dropping:
            cut = cut or bool(line.strip())
            continue
        kept.append(line)
    return "".join(kept).rstrip("\n") + "\n" if cut else None


def syntax_diagnostic(exc: SyntaxError, source: str) -> Diagnostic:
    """Turn a SyntaxError (or IndentationError, TabError) into a parse diagnostic."""
    kind = (
        "tab"
        if isinstance(exc, TabError)
        else "indentation"
        if isinstance(exc, IndentationError)
        else "syntax"
    )
    line = exc.lineno
    col = exc.offset if exc.offset and exc.offset > 0 else None
    end_col = exc.end_offset if exc.end_lineno == exc.lineno and exc.end_offset else None
    excerpt = caret_excerpt(source, line, col, end_col) if line is not None else None
    what = {"tab": "inconsistent tabs and spaces", "indentation": "an indentation error"}.get(
        kind, "a syntax error"
    )
    message = f"{what}: {exc.msg}"
    if line is not None:
        message += f" at line {line}"
    message += "; fix it and send the whole function again"
    return Diagnostic("parse", kind, message, line, col, excerpt)


quiet_syntax_warnings()  # from import on: extraction parses replies before this stage runs
