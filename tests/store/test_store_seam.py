"""One storage seam: no SQL above `symbiont.store`.

Every table is read and written through the store's repositories (`store.capabilities`,
`store.transcripts`, `store.searches`, the evolvable functions), so a second backend
(PostgreSQL) is a second implementation behind them and nothing else. This test reads the
source of every module outside `symbiont/store/` and fails on what would speak SQL there:
an import of a database driver (`sqlite3`, `psycopg`), a call of `execute` /
`executemany` / `executescript`, or a string that is a SQL statement.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import symbiont

SRC = Path(symbiont.__file__).resolve().parent

# Modules above the store that may speak SQL, and why. Keep it short.
ALLOWED = {
    # Starts a throwaway PostgreSQL server for the tests and creates / drops its databases:
    # server administration for tests, not the program's persistence.
    "testing/pgserver.py",
}

DRIVERS = ("sqlite3", "psycopg", "psycopg2", "apsw")
EXECUTE = ("execute", "executemany", "executescript")
STATEMENT = re.compile(
    r"""^\s*(
        SELECT\b.*\bFROM\b
      | INSERT\s+(OR\s+\w+\s+)?INTO\b
      | UPDATE\s+\w+\s+SET\b
      | DELETE\s+FROM\b
      | (CREATE|DROP)\s+(TEMP\s+|VIRTUAL\s+|UNIQUE\s+)?(TABLE|INDEX|VIEW|TRIGGER|EXTENSION|DATABASE)\b
      | ALTER\s+TABLE\b
      | PRAGMA\s+\w+
      | (BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)(\s+\w+)?\s*$
    )""",
    re.VERBOSE | re.DOTALL,
)


def _string(node: ast.AST) -> str | None:
    """The text of a string literal; an f-string's literal parts joined."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else " x "
            for v in node.values
        )
    return None


def sql_spoken(source: str) -> list[tuple[int, str]]:
    """(line, what) for every place in `source` that speaks SQL."""
    found: list[tuple[int, str]] = []
    tree = ast.parse(source)
    skip = {  # docstrings, and the parts of an f-string (read as a whole)
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    } | {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
    }
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in DRIVERS:
                found.append((node.lineno, f"imports {name}"))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in EXECUTE
        ):
            found.append((node.lineno, f"calls .{node.func.attr}()"))
        text = _string(node)
        if text is not None and id(node) not in skip and STATEMENT.match(text):
            found.append((node.lineno, f"SQL statement {' '.join(text.split())[:60]!r}"))
    return sorted(set(found))


def test_nothing_above_the_store_speaks_sql() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("store/") or rel in ALLOWED:
            continue
        for line, what in sql_spoken(path.read_text(encoding="utf-8")):
            offenders.append(f"src/symbiont/{rel}:{line}: {what}")
    assert not offenders, (
        "SQL above symbiont.store (move it into a repository of the store):\n"
        + "\n".join(offenders)
    )


def test_every_allowed_module_still_exists_and_still_needs_it() -> None:
    # An allowance that is no longer needed is taken off the list, so it cannot hide new SQL.
    for rel in ALLOWED:
        path = SRC / rel
        assert path.is_file(), f"{rel} is allowed SQL but no longer exists: remove it from ALLOWED"
        assert sql_spoken(path.read_text(encoding="utf-8")), (
            f"{rel} no longer speaks SQL: remove it from ALLOWED"
        )


def test_the_detector_sees_sql_and_leaves_prose_alone() -> None:
    # What cli/agent.py had before the seam: a raw peek into the transcript table.
    peek = (
        "def has(path):\n"
        "    import sqlite3\n"
        "    conn = sqlite3.connect(path)\n"
        '    return conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()\n'
    )
    found = sql_spoken(peek)
    assert {what.split()[0] for _, what in found} == {"imports", "calls", "SQL"}
    assert [line for line, _ in found] == [2, 4, 4]
    assert sql_spoken('x = "UPDATE capabilities SET status = ?"\n')
    assert sql_spoken('q = ("INSERT OR IGNORE INTO t (a) "\n     "VALUES (?)")\n')
    prose = (
        '"""Select the model; update the index. CREATE a table of results from the runs."""\n'
        'help = "select from the list, then update your settings"\n'
        'msg = f"Begin with {name}"\n'
        "pool.submit(job)\n"
    )
    assert sql_spoken(prose) == []
