"""Parse Python into `ast` trees from any thread: `ast.parse` under one process-wide lock.

Why a lock: CPython 3.11 keeps the depth counter it uses while it turns a parsed module into
Python `ast` objects in the interpreter, not in the call (gh-106905). When two threads parse at
once, a thread switch in the middle of one parse (the garbage collector running a `__del__` is
enough) lets the other thread move that shared counter, and `ast.parse` then fails with
`SystemError: AST constructor recursion depth mismatch`. symbiont parses in worker threads
(`evolve` and `search` run the pipeline through `asyncio.to_thread`, several candidates at once),
so every parse symbiont makes goes through this module: `parse`, `literal_eval` and
`compile_tree` (turning a tree back into code walks the same counter).

The lock is re-entrant (a finalizer that parses during a parse does not deadlock) and a forked
child starts with a fresh one (a trial forked while another thread held it can still parse).
It does not protect a program's own threads that call `ast.parse` directly at the same time;
ruff's banned-api rule keeps symbiont's own code on these functions.
"""

from __future__ import annotations

import ast
import os
import threading
import types
from typing import Any

_lock = threading.RLock()


def _fresh_lock_in_child() -> None:
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_fresh_lock_in_child)


def parse(
    source: str | bytes,
    filename: str = "<unknown>",
    mode: str = "exec",
    *,
    type_comments: bool = False,
) -> Any:
    """`ast.parse(source, filename, mode)`, safe to call from several threads at once."""
    with _lock:
        return ast.parse(source, filename, mode, type_comments=type_comments)


def literal_eval(node_or_string: str | ast.AST) -> Any:
    """`ast.literal_eval`, safe to call from several threads at once (text is parsed first)."""
    if isinstance(node_or_string, str):
        with _lock:
            return ast.literal_eval(node_or_string)
    return ast.literal_eval(node_or_string)


def compile_tree(
    tree: ast.AST, filename: str, mode: str = "exec", flags: int = 0, dont_inherit: bool = False
) -> types.CodeType:
    """`compile(tree, filename, mode, ...)` for a tree, safe to call from several threads at once."""
    with _lock:
        return compile(tree, filename, mode, flags=flags, dont_inherit=dont_inherit)
