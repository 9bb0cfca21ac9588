"""Where the function returned the values a failing check complains about.

A check that fails says which calls went wrong (`fizzbuzz(15) returned 'Fizz', expected
'FizzBuzz'`), but not which line of the function gave the wrong value; an exception, by
contrast, comes with the candidate's own frames. A small model shown the first alone sent
the function back unchanged (Qwen2.5-Coder-0.5B, 6 of 10 fizzbuzz attempts). So when the
check fails, it runs once more with a profile hook on the function's code object, which
notes each call's arguments, the line it returned from and the value; the calls whose text
(`fizzbuzz(15)`) the failure message quotes are listed with that line:

    Where your function returned those values:
      fizzbuzz(15) returned 'Fizz' at `return "Fizz"`

Only in a trial (a forked child or a pool worker), never in the live process: the check runs
a second time. Skipped when the first run took longer than `MAX_FIRST_RUN_S`, so the second
cannot push a slow check past the trial's timeout. Nothing is added when the second run
passes, or when the message quotes no call.
"""

from __future__ import annotations

import dis
import linecache
import reprlib
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

MAX_FIRST_RUN_S = 0.25  # a check slower than this is not run again
MAX_CALLS = 2_000  # calls noted at most
MAX_SHOWN = 4  # lines listed at most

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
HEAD = "Where your function returned those values:"
# The opcodes a frame's last instruction is when it returns a value (not when an exception
# leaves it: the profile hook's "return" event comes then too, with None).
_RETURNS = frozenset(dis.opmap[n] for n in ("RETURN_VALUE", "RETURN_CONST") if n in dis.opmap)


def where_returned(fn: Any, check: Callable[[Any], object], message: str) -> str | None:
    """Run `check(fn)` again with a profile hook on `fn.__code__`; the lines for the calls
    `message` quotes, or None."""
    code = fn.__code__
    params = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    name = fn.__name__
    calls: list[tuple[str, int, Any]] = []  # (call text, line returned from, value)
    open_calls: list[str | None] = []

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if frame.f_code is not code:
            return
        if event == "call":
            if len(calls) + len(open_calls) >= MAX_CALLS:
                open_calls.append(None)
                return
            local = frame.f_locals
            args = ", ".join(_repr.repr(local[p]) for p in params if p in local)
            open_calls.append(f"{name}({args})")
        elif event == "return" and open_calls:
            text = open_calls.pop()
            if text is not None and code.co_code[frame.f_lasti] in _RETURNS:
                calls.append((text, frame.f_lineno, arg))

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        check(fn)
    except Exception:
        pass
    else:
        return None  # it passed this time: nothing to explain
    finally:
        sys.setprofile(previous)
    lines: list[str] = []
    seen: set[str] = set()
    for text, lineno, value in calls:
        if text in seen or text not in message:
            continue
        seen.add(text)
        source = linecache.getline(code.co_filename, lineno).strip()
        where = f" at `{source}`" if source else f" at line {lineno}"
        lines.append(f"  {text} returned {_repr.repr(value)}{where}")
        if len(lines) == MAX_SHOWN:
            break
    return HEAD + "\n" + "\n".join(lines) if lines else None


def section(detail: str | None) -> str | None:
    """The block `where_returned` put at the start of a diagnostic's detail, or None."""
    if not detail or not detail.startswith(HEAD):
        return None
    lines = detail.splitlines()
    end = 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return "\n".join(lines[:end]) if end > 1 else None
