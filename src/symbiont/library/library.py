"""The capability library: verify, store, find, run and retire capabilities.

    lib = Library()                                   # the default store, wasm sandbox
    lib.add(Capability.from_source(src, id="slugify", examples=[...]))
    hits = lib.search("turn a title into a url slug", k=5)
    result = lib.run("slugify", {"text": "Hello World"})

Why it is built the way it is (each point answers a failure of the Self-Evolving Agent
Runtime this replaces):

- **Verified before stored.** `add` runs the same pipeline as evolvable functions (parse,
  signature and schema, policy, type check in the capability's own file, compile) and then
  every example in the sandbox, against a scratch copy of the data folder so a test of an
  update capability never touches real data. Only then is anything written.
- **Deprecation is persistent and excluded before top-k.** Outcomes are recorded in the
  store inside one transaction that also takes the deprecation decision
  (`store.capabilities.record_run`), so it survives restarts and two processes — or two
  machines sharing a PostgreSQL store — cannot race past it; `search` passes deprecated ids
  to the index's `exclude`, so the k results are k usable capabilities.
- **No SQL here.** Every row goes through the store's capability repository
  (`symbiont.store.capabilities.CapabilityStore`, SQLite or PostgreSQL); the library keeps
  the logic: verification, sandbox runs, blame, what a reason says.
- **Only the capability's own failures retire it.** An exception, crash, timeout, invalid
  output or undeclared `{"error": ...}` counts; an error its examples or output schema
  declare (an unknown id), and a transient host failure (server down, 5xx), do not
  (`symbiont.library.blame`). `doctor` re-checks deprecated ones and restores them when
  their examples pass again.
- **Nothing untrusted runs in the host.** Schemas come from the source's AST, examples and
  runs go through `symbiont.sandbox`.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import dataclasses
import difflib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symbiont import pyast
from symbiont.diagnostics import Diagnostic, render_all
from symbiont.errors import CapabilityError, SandboxError, StageError
from symbiont.library.blame import failure_blame
from symbiont.library.capability import (
    STATUSES,
    Capability,
    Example,
    check_example,
    json_equal,
    now,
    outcome_error,
    validate_id,
    validate_summary,
)
from symbiont.library.folders import (
    copy_seed_data,
    iter_capability_dirs,
    read_capability_dir,
    write_capability_dir,
)
from symbiont.library.jsonschema import SchemaError, function_schemas, validate
from symbiont.signature import DeclaredSignature, params_from_ast
from symbiont.store.capabilities import CapabilityRun

if TYPE_CHECKING:
    from symbiont.pipeline import Policy
    from symbiont.sandbox import Limits, Sandbox, SandboxResult

log = logging.getLogger("symbiont.library")


DEFAULT_DEPRECATE_AFTER = 2
# On top of the pipeline's default policy: capabilities do I/O through `symbiont.host` only.
# (A guardrail that tells a model where to go, not the boundary: that is the sandbox.)
# In-memory helpers stay allowed: `io.StringIO` to parse CSV text read with `read_file`,
# `urllib.parse` to build the URL for `http_get` (see CAPABILITY_ALLOWED_MODULES).
CAPABILITY_DENIED_IMPORTS = frozenset(
    {
        "pathlib",
        "tempfile",
        "glob",
        "fileinput",
        "urllib.request",
        "http",
        "requests",
        "httpx",
        "aiohttp",
        "ftplib",
        "smtplib",
        "pickle",
        "marshal",
        "shelve",
        "dbm",
        "asyncio",
    }
)
# Harmless standard-library modules a capability may import (documented, and tested to pass
# the capability policy: a denied-import list that grows must not catch one of them).
CAPABILITY_ALLOWED_MODULES: tuple[str, ...] = (
    "io",
    "csv",
    "json",
    "re",
    "math",
    "datetime",
    "collections",
    "itertools",
    "functools",
    "statistics",
    "decimal",
    "string",
    "textwrap",
    "base64",
    "hashlib",
    "uuid",
    "random",
    "dataclasses",
    "typing",
    "enum",
    "heapq",
    "bisect",
    "difflib",
    "html",
    "urllib.parse",
)
_HOST_HINT = (
    "a capability reaches files and the network only through "
    "`from symbiont.host import read_file, write_file, list_files, http_get` "
    "(its permissions decide what they may do)"
)
# The reason `_record` gives an automatic deprecation (a hand-given one is free text).
_AUTO_DEPRECATION = re.compile(r"^failed \d+ times in a row")
_BLAME_NOTE = {
    "declared": "an error its examples or schema declare",
    "host": "a transient host failure",
}
SEARCH_MODES = ("hybrid", "semantic", "lexical")
_ERROR_TEXT_LIMIT = 2000


class CapabilityRefused(CapabilityError):
    """`add` refused a capability: its pipeline diagnostics or its failing examples."""

    def __init__(
        self,
        capability_id: str,
        message: str,
        *,
        diagnostics: Sequence[Diagnostic] = (),
        failures: Sequence[ExampleFailure] = (),
    ) -> None:
        self.capability_id = capability_id
        self.diagnostics = tuple(diagnostics)
        self.failures = tuple(failures)
        super().__init__(message)


class CapabilityNotFound(CapabilityError, LookupError):
    """No capability has the given id."""


class InvalidInput(CapabilityError, ValueError):
    """The input of `run` is not valid JSON or does not fit the input schema."""

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        self.errors = tuple(errors)
        super().__init__(message)


class CapabilityDeprecated(CapabilityError):
    """A deprecated capability was asked to run without `force=True`.

    `cli_message` says the same with the command-line flags (`--force`, `lib doctor`)."""

    def __init__(self, capability_id: str, reason: str) -> None:
        self.capability_id = capability_id
        self.reason = reason
        head = f"capability {capability_id!r} is deprecated ({reason})"
        self.cli_message = (
            f"{head}; it refuses to run: add --force to run it anyway, or re-check it with "
            f"`symbiont lib doctor {capability_id}` (restored when its examples pass again)"
        )
        super().__init__(
            f"{head}; it refuses to run unless forced: Library.run(..., force=True), or "
            "Library.doctor() to re-check its examples"
        )


class CapabilityExists(CapabilityError):
    """`add` was given a different capability under an id that is already stored.

    `cli_message` names the command-line way (`symbiont lib add --replace`)."""

    def __init__(self, capability_id: str, version: int) -> None:
        self.capability_id = capability_id
        self.version = version
        head = f"a different capability {capability_id!r} (version {version}) is already stored"
        self.cli_message = (
            f"{head}; to store this one as version {version + 1}, add --replace to "
            "`symbiont lib add`"
        )
        super().__init__(f"{head}; Library.replace({capability_id!r}, new) stores a new version")


@dataclass(slots=True)
class DoctorEntry:
    """What `Library.doctor` found for one capability."""

    capability_id: str
    status: str  # before the check
    passed: bool  # every example passed
    restored: bool
    note: str
    failures: list[ExampleFailure] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ExampleFailure:
    """A failing example, with everything needed to see why: input, expected, got."""

    index: int
    example: Example
    reason: str
    output: Any = None
    error: str | None = None

    def render(self) -> str:
        ex = self.example
        expected = f"check {ex.check.describe()}" if ex.check is not None else _dump(ex.expect, 400)
        got = f"error: {self.error}" if self.error is not None else _dump(self.output, 400)
        return (
            f"{ex.label(self.index)}: {self.reason}\n"
            f"  input:    {_dump(ex.input, 400)}\n"
            f"  expected: {expected}\n"
            f"  got:      {got}"
        )


@dataclass(slots=True)
class RunResult:
    """The outcome of `Library.run`; `ok` is False for exceptions *and* returned errors."""

    capability_id: str
    version: int
    ok: bool
    output: Any = None
    error: str | None = None
    error_kind: str | None = None  # sandbox failure kind, "error_value" or "invalid_output"
    traceback: str | None = None
    duration_s: float = 0.0
    logs: list[str] = field(default_factory=list)
    tier: str = ""
    deprecated_now: bool = False  # this failure made it reach the deprecation threshold
    forced: bool = False
    # Who a failure is attributed to (`blame.failure_blame`): "capability" failures count
    # towards deprecation; "declared" errors (its examples or schema say so) and "host"
    # failures (network down, server 5xx) do not. None for a success.
    blame: str | None = None

    @property
    def counted(self) -> bool:
        """This run counts as a failure of the capability (towards deprecation)."""
        return not self.ok and self.blame == "capability"


@dataclass(frozen=True, slots=True)
class SearchResult:
    capability: Capability
    score: float
    why: str
    semantic_score: float | None = None
    lexical_score: float | None = None


@dataclass(slots=True)
class ImportReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (folder, message)
    seeded: list[str] = field(default_factory=list)  # data files copied, "hr/x.json"


def _dump(value: Any, limit: int = 2000) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def default_data_root() -> Path:
    """`$SYMBIONT_HOME/data`, else `./.symbiont/data`."""
    home = os.environ.get("SYMBIONT_HOME", "").strip()
    base = Path(home).expanduser() if home else Path.cwd() / ".symbiont"
    return base / "data"


def _fence(source: str) -> str:
    """The source as a reply the extract stage takes whole (a fence longer than any inside)."""
    longest = max((len(m) for m in re.findall(r"`{3,}", source)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}python\n{source.rstrip()}\n{fence}\n"


class Library:
    """Capabilities in a store, searchable, runnable in a sandbox, retired when they fail.

    `store_or_path` (or `store=`): an open store (`SQLiteStore`, `PostgresStore`: left open
    on `close`), a SQLite file path, a `postgresql://` URL, or None for the default store
    (`SYMBIONT_STORE`, else `default_store_path()`). `tier`: sandbox tier (default
    `$SYMBIONT_SANDBOX`, else "wasm"; falls back to "process", announced, when wasm is not
    available). `data_root`: where data folders live.
    """

    def __init__(
        self,
        store_or_path: Any = None,
        *,
        store: Any = None,
        embedder: Any = None,
        tier: str | None = None,
        data_root: str | Path | None = None,
        deprecate_after: int = DEFAULT_DEPRECATE_AFTER,
        typecheck: bool = True,
        policy: Policy | None = None,
        limits: Limits | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        from symbiont.store import open_store

        if store is not None:
            if store_or_path is not None:
                raise CapabilityError("give the store once: Library(store) or Library(store=...)")
            store_or_path = store
        if deprecate_after < 1:
            raise CapabilityError(f"deprecate_after must be at least 1, not {deprecate_after}")
        self._owns_store = store_or_path is None or isinstance(store_or_path, str | os.PathLike)
        self.store = open_store(store_or_path) if self._owns_store else store_or_path
        self._capabilities = self.store.capabilities
        # Where the store is, for messages: the file, or the URL without its password.
        self.path: Path | str = self.store.path
        self.data_root = Path(data_root).expanduser() if data_root else default_data_root()
        self.tier = tier or os.environ.get("SYMBIONT_SANDBOX", "").strip() or "wasm"
        self.deprecate_after = deprecate_after
        self.typecheck = typecheck
        self.policy = policy
        self.limits = limits
        self._sandbox = sandbox
        self._owns_sandbox = sandbox is None
        self._embedder = embedder
        self._index: Any = None
        self._index_seen: tuple[Any, ...] = ()
        self._lock = threading.RLock()
        self._closed = False

    # -- plumbing ------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sandbox is not None and self._owns_sandbox:
            with contextlib.suppress(Exception):
                self._sandbox.close()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            from symbiont.sandbox import get_sandbox

            try:
                self._sandbox = get_sandbox(self.tier)
            except SandboxError as exc:
                if self.tier != "wasm":
                    raise
                log.warning("sandbox tier 'wasm' unavailable (%s); using 'process'", exc)
                self._sandbox = get_sandbox("process")
                self.tier = "process"
        return self._sandbox

    @property
    def index(self) -> Any:
        """The retrieval index (created on first use: it loads the embedder)."""
        if self._index is None:
            try:
                from symbiont.library.index import CapabilityIndex
            except ImportError as exc:
                raise CapabilityError(f"the retrieval index is not available: {exc}") from exc
            embedder = self._embedder
            if embedder is None:
                from symbiont.embed import default_embedder

                embedder = default_embedder()
            with self._lock:
                self._index = CapabilityIndex(self.store.index_storage(), embedder)
                self._index_seen = self._capabilities.content_version()
            self._sync_index(self._index)
        return self._index

    def _sync_index(self, index: Any) -> None:
        """Index every stored capability the index lacks (stored by a process without an
        index, or whose indexing failed), in one batch."""
        stored = set(self._capabilities.ids())
        missing = sorted(i for i in stored if i not in index)
        if missing:
            self._upsert_index([self.get(i) for i in missing])

    def _refresh_index(self) -> Any:
        """The index, reloaded first if another process stored capabilities since."""
        index = self.index
        with self._lock:
            version = self._capabilities.content_version()
            stale = version != self._index_seen
            if stale:
                index.reload()
                self._index_seen = version
        if stale:
            self._sync_index(index)
        return index

    def _index_doc(self, cap: Capability) -> Any:
        from symbiont.library.index import IndexDoc

        return IndexDoc(cap.id, cap.name, cap.summary, cap.param_names())

    # -- verification --------------------------------------------------------------------------
    def verify(self, cap: Capability) -> Capability:
        """Check `cap` as `add` does, without storing it; returns it with its schemas.

        Raises `CapabilityRefused` with the diagnostics or the failing examples.
        """
        validate_id(cap.id)
        summary = validate_summary(cap.summary, capability_id=cap.id)
        if not cap.name.strip():
            raise CapabilityRefused(cap.id, f"capability {cap.id!r} has an empty name")
        # leading blank lines would shift every diagnostic's line number against the file
        source = cap.source.strip("\n") + "\n"
        cap = cap.with_(summary=summary, name=cap.name.strip(), source=source)
        _tree, schemas = self.check_source(cap)
        cap = cap.with_(input_schema=schemas[0], output_schema=schemas[1])
        if not cap.examples:
            raise CapabilityRefused(
                cap.id,
                f"capability {cap.id!r} has no examples; give at least one (input and expected "
                "output or a check): examples are its tests, and only tested code is kept",
            )
        failures = self._run_examples(cap)
        if failures:
            raise CapabilityRefused(
                cap.id,
                f"capability {cap.id!r} refused: {len(failures)} of {len(cap.examples)} "
                "example(s) failed\n" + "\n".join(f.render() for f in failures),
                failures=failures,
            )
        return cap

    def _refuse(self, cap: Capability, diagnostics: Sequence[Diagnostic]) -> CapabilityRefused:
        stage = diagnostics[0].stage if diagnostics else "pipeline"
        return CapabilityRefused(
            cap.id,
            f"capability {cap.id!r} refused at the {stage} stage:\n{render_all(list(diagnostics))}",
            diagnostics=diagnostics,
        )

    def check_source(
        self, cap: Capability
    ) -> tuple[ast.Module, tuple[dict[str, Any], dict[str, Any]]]:
        """The build checks `add` runs on a capability's source (parse, signature and schema,
        policy, type check); returns the tree and the (input, output) JSON schemas, or raises
        `CapabilityRefused` with the diagnostics. The mutation agent's `build()` uses it."""
        from symbiont.pipeline import (
            PipelineConfig,
            Target,
            parse_source,
            run_pipeline,
        )

        try:
            tree = parse_source(cap.source, filename=f"<capability {cap.id}>")
        except StageError as exc:
            raise self._refuse(cap, exc.diagnostics) from None
        node = next(
            (
                n
                for n in tree.body
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == cap.entry
            ),
            None,
        )
        if node is None:
            defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
            raise self._refuse(
                cap,
                [
                    Diagnostic(
                        "signature",
                        "missing_entry",
                        f"the source defines no module-level function `{cap.entry}` (the entry); "
                        f"it defines: {', '.join(defined) or 'no functions'}",
                    )
                ],
            )
        if isinstance(node, ast.AsyncFunctionDef):
            raise self._refuse(
                cap,
                [
                    Diagnostic(
                        "signature",
                        "async_entry",
                        f"`{cap.entry}` is `async def`; a capability entry must be a plain function",
                        node.lineno,
                    )
                ],
            )
        try:
            schemas = function_schemas(tree, cap.entry)
        except SchemaError as exc:
            raise self._refuse(
                cap, [Diagnostic("signature", "schema", str(exc), node.lineno)]
            ) from None
        signature = DeclaredSignature(
            name=node.name,
            qualname=node.name,
            module=f"capability_{cap.id.replace('-', '_').replace('.', '_')}",
            params=params_from_ast(node.args),
            returns=ast.unparse(node.returns) if node.returns is not None else None,
            docstring=ast.get_docstring(node),
            is_async=False,
        )
        futures = [
            s for s in tree.body if isinstance(s, ast.ImportFrom) and s.module == "__future__"
        ]
        fn = copy.copy(node)
        fn.decorator_list = []
        module_code = pyast.compile_tree(
            ast.Module(body=[*futures, fn], type_ignores=[]),
            "<capability>",
            "exec",
            dont_inherit=True,
        )
        declared = next(
            c
            for c in module_code.co_consts
            if isinstance(c, types.CodeType) and c.co_name == node.name
        )
        scratch = Path(tempfile.gettempdir()) / "symbiont-capabilities" / f"{signature.module}.py"
        scratch.parent.mkdir(parents=True, exist_ok=True)  # the type checker runs from there
        # The "module" is empty and the candidate is the whole capability file, so the type
        # check sees the file exactly as it is (no baseline errors to subtract).
        target = Target(
            signature=signature,
            globals={"__name__": signature.module},
            declared_code=declared,
            module_source="",
            module_path=str(scratch),
            function_span=(1, 1),
        )
        own = _symbiont_imports(tree, cap.source)
        if own:
            raise self._refuse(cap, own)
        policy = self.policy or capability_policy()
        # No module-level rule: a capability's module runs afresh in the sandbox on each call.
        config = PipelineConfig(typecheck=self.typecheck, policy=policy, module_level=False)
        result = run_pipeline(_fence(cap.source), target, config)
        if not result.ok:
            raise self._refuse(cap, [_with_host_hint(d) for d in result.diagnostics])
        return tree, schemas

    def _run_examples(self, cap: Capability) -> list[ExampleFailure]:
        failures: list[ExampleFailure] = []
        with self._scratch_data(cap) as data_dir:
            for i, ex in enumerate(cap.examples):
                problems = validate(ex.input, cap.input_schema, what="input")
                if problems:
                    failures.append(
                        ExampleFailure(
                            i,
                            ex,
                            "its input does not fit the input schema: " + "; ".join(problems[:3]),
                        )
                    )
                    continue
                result = self.run_in_sandbox(cap, ex.input, data_dir)
                output, error = self.outcome(cap, result)
                reason = check_example(ex, output, error)
                if reason is not None:
                    failures.append(ExampleFailure(i, ex, reason, output, error))
        return failures

    @contextlib.contextmanager
    def _scratch_data(self, cap: Capability) -> Iterator[Path | None]:
        """A temporary copy of the capability's data folder, so examples cannot change data."""
        perms = cap.permissions
        if not (perms.read_files or perms.write_files):
            yield None
            return
        tmp = Path(tempfile.mkdtemp(prefix=f"symbiont-examples-{cap.id}-"))
        try:
            real = self.data_dir_for(cap)
            scratch = tmp / "data"
            if real.is_dir():
                shutil.copytree(real, scratch, symlinks=True)
            else:
                scratch.mkdir()
            yield scratch
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _permissions(self, cap: Capability, data_dir: Path | None) -> Any:
        from symbiont.sandbox import Permissions

        p = cap.permissions
        return Permissions(
            http_allow=p.http_allow,
            allow_private_network=p.allow_private_network,
            data_dir=data_dir if (p.read_files or p.write_files) else None,
            read_files=p.read_files,
            write_files=p.write_files,
        )

    def run_in_sandbox(
        self, cap: Capability, value: dict[str, Any], data_dir: Path | None
    ) -> SandboxResult:
        """Run `cap` once in this library's sandbox with `data_dir` as its data folder (the
        examples and the mutation agent's tests pass a scratch copy; `run` the real one)."""
        from symbiont.sandbox import Limits

        return self.sandbox.run(
            cap.source,
            cap.entry,
            json.dumps(value, ensure_ascii=False),
            self._permissions(cap, data_dir),
            self.limits or Limits(),
        )

    @staticmethod
    def outcome(
        cap: Capability, result: SandboxResult, *, verbose: bool = False
    ) -> tuple[Any, str | None]:
        """(output, error text): a sandbox failure, a returned error value, or an output that
        breaks the declared return type all count as errors. `verbose` adds the error kind
        and the trimmed traceback (for a model to act on)."""
        if result.error is not None:
            if not verbose:
                return None, result.error.message or result.error.kind
            text = f"{result.error.kind}: {result.error.message}"
            if result.error.traceback:
                text += "\n" + result.error.traceback[-1500:]
            return None, text
        returned = outcome_error(result.output)
        if returned is not None:
            return result.output, returned
        problems = validate(result.output, cap.output_schema, what="output")
        if problems:
            return result.output, "the output does not fit the declared return type: " + "; ".join(
                problems[:3]
            )
        return result.output, None

    # -- storing -------------------------------------------------------------------------------
    def add(self, cap: Capability) -> Capability:
        """Verify `cap` and store it. Adding an identical capability again is a no-op;
        a different one under an existing id needs `replace`."""
        return self._add(cap, index=True)

    def _add(self, cap: Capability, *, index: bool) -> Capability:
        existing = self._get_or_none(cap.id)
        if existing is not None:
            return self._already_stored(existing, cap)
        verified = self.verify(cap)
        stamp = now()
        verified = verified.with_(
            version=max(1, cap.version), created_at=stamp, updated_at=stamp, status="active"
        )
        if not self._capabilities.add(verified):  # another process stored this id meanwhile
            return self._already_stored(self.get(cap.id), cap)
        if index:
            self._upsert_index([verified])
        return self.get(verified.id)

    @staticmethod
    def _already_stored(existing: Capability, cap: Capability) -> Capability:
        if _same_content(existing, cap):
            return existing
        raise CapabilityExists(cap.id, existing.version)

    def replace(self, old_id: str, new: Capability) -> Capability:
        return self._replace(old_id, new, index=True)

    def _replace(self, old_id: str, new: Capability, *, index: bool) -> Capability:
        """Store `new` as the successor of `old_id`.

        Same id: a new version of that capability (the previous one stays in its history).
        Another id: `new` is added with `old_id` among its parents and the old one becomes
        `legacy`, `replaced_by` the new one (it still runs; search leaves it out).
        """
        old = self.get(old_id)
        if new.id == old_id:
            if _same_content(old, new):
                return old
            verified = self.verify(new)
            stamp = now()
            verified = verified.with_(
                parents=new.parents or old.parents,
                created_at=old.created_at,
                updated_at=stamp,
                status="active",
            )
            # The store numbers the version (the current one + 1, in the write), so two
            # processes replacing it at once store two versions, not one twice.
            if self._capabilities.add_version(verified) is None:
                raise CapabilityNotFound(f"no capability {old_id!r} (removed meanwhile)")
            if index:
                self._upsert_index([verified])
            return self.get(old_id)
        if self._get_or_none(new.id) is not None:
            raise CapabilityError(
                f"cannot replace {old_id!r} by {new.id!r}: {new.id!r} already exists"
            )
        parents = tuple(dict.fromkeys((*new.parents, old_id)))
        verified = self.verify(new.with_(parents=parents))
        stamp = now()
        verified = verified.with_(created_at=stamp, updated_at=stamp, status="active", version=1)
        if not self._capabilities.supersede(old_id, verified, f"replaced by {new.id}"):
            raise CapabilityError(
                f"cannot replace {old_id!r} by {new.id!r}: {new.id!r} already exists"
            )
        if index:
            self._upsert_index([verified])
        return self.get(new.id)

    def _upsert_index(self, caps: Sequence[Capability]) -> None:
        if not caps:
            return
        try:
            index = self.index
        except CapabilityError as exc:  # no index module: stored, but not searchable yet
            log.warning(
                "%s; %d capabilities not indexed yet (they are indexed when the library next "
                "opens its index)",
                exc,
                len(caps),
            )
            return
        docs = [self._index_doc(c) for c in caps]
        with self._lock:  # one thread at a time in the index
            if len(docs) == 1:
                index.upsert(docs[0])
            else:
                index.upsert_many(docs)
            self._index_seen = self._capabilities.content_version()

    # -- reading -------------------------------------------------------------------------------
    def _get_or_none(self, cap_id: str) -> Capability | None:
        return self._capabilities.get(cap_id)

    def get(self, cap_id: str) -> Capability:
        cap = self._get_or_none(cap_id)
        if cap is None:
            ids = self._capabilities.ids()
            close = difflib.get_close_matches(cap_id, ids, n=3, cutoff=0.5)
            hint = (
                f"; did you mean {', '.join(close)}?"
                if close
                else (
                    "; the library is empty (import some with `symbiont lib import DIR`)"
                    if not ids
                    else ""
                )
            )
            raise CapabilityNotFound(f"no capability {cap_id!r}{hint}")
        return cap

    def __contains__(self, cap_id: object) -> bool:
        return isinstance(cap_id, str) and self._capabilities.contains(cap_id)

    def list(self, status: str | None = None) -> list[Capability]:
        """All capabilities (sorted by id), or those with `status`."""
        if status is not None and status not in STATUSES:
            raise CapabilityError(f"unknown status {status!r}; choose one of {', '.join(STATUSES)}")
        return self._capabilities.list(status)

    def versions(self, cap_id: str) -> builtins.list[dict[str, Any]]:
        """Every stored version of a capability (oldest first): version, source, summary, time."""
        return [
            {
                "version": v.version,
                "source": v.source,
                "summary": v.summary,
                "created_at": v.created_at,
            }
            for v in self._capabilities.versions(cap_id)
        ]

    def data_dir(self, cap_id: str) -> Path:
        """The capability's data folder: `<data_root>/<permissions.data or id>/`."""
        return self.data_dir_for(self.get(cap_id))

    def data_dir_for(self, cap: Capability) -> Path:
        return self.data_root / cap.data_folder_name

    # -- search ------------------------------------------------------------------------------
    def search(
        self, task: str, k: int = 5, *, mode: str = "hybrid", include_legacy: bool = False
    ) -> builtins.list[SearchResult]:
        """The `k` capabilities that best fit `task`. Deprecated ones (and legacy ones unless
        asked) are excluded inside the index, before the top k is taken."""
        if mode not in SEARCH_MODES:
            raise CapabilityError(
                f"unknown search mode {mode!r}; choose one of {', '.join(SEARCH_MODES)}"
            )
        if not task.strip():
            raise CapabilityError("the search task is empty; describe what you want to do")
        if k < 1:
            raise CapabilityError(f"k must be at least 1, not {k}")
        hidden = ("deprecated",) if include_legacy else ("deprecated", "legacy")
        excluded = self._capabilities.ids(hidden)
        index = self._refresh_index()
        with self._lock:
            hits = index.search(task, k, mode=mode, exclude=tuple(excluded))
        out: builtins.list[SearchResult] = []
        for hit in hits:
            cap = self._get_or_none(hit.id)
            if cap is None:  # indexed but no longer stored: drop it from the index too
                with contextlib.suppress(Exception):
                    self.index.remove(hit.id)
                continue
            out.append(
                SearchResult(
                    cap,
                    float(hit.score),
                    str(getattr(hit, "why", "")),
                    getattr(hit, "semantic_score", None),
                    getattr(hit, "lexical_score", None),
                )
            )
        return out

    def reindex(self) -> int:
        """Put every stored capability into the index (the index skips unchanged ones)."""
        caps = self.list()
        self._upsert_index(caps)
        return len(caps)

    # -- running -----------------------------------------------------------------------------
    def run(self, cap_id: str, input: Mapping[str, Any] | str, *, force: bool = False) -> RunResult:
        """Run a capability on `input` (a dict or JSON text) and record the outcome.

        The input is checked against the input schema first (`InvalidInput` names the
        field; nothing is recorded, the capability did not run). A deprecated capability
        refuses unless `force`. Failures are returned, not raised; only those attributable
        to the capability (`RunResult.blame == "capability"`: an exception or crash in its
        code, a timeout, an invalid output, an undeclared error value) count towards
        deprecation — not an error its examples or output schema declare, nor a transient
        host failure (see `symbiont.library.blame`).
        """
        cap = self.get(cap_id)
        if cap.status == "deprecated" and not force:
            raise CapabilityDeprecated(cap_id, cap.status_reason or "no reason given")
        value = parse_input(input)
        problems = validate(value, cap.input_schema, what="input")
        if problems:
            raise InvalidInput(f"invalid input for {cap_id}: {_listed(problems)}", problems)
        data_dir = (
            self.data_dir_for(cap)
            if (cap.permissions.read_files or cap.permissions.write_files)
            else None
        )
        started = now()
        result = self.run_in_sandbox(cap, value, data_dir)
        output, error = self.outcome(cap, result)
        kind: str | None = None
        if result.error is not None:
            kind = result.error.kind
        elif error is not None:
            kind = "error_value" if outcome_error(output) is not None else "invalid_output"
        run = RunResult(
            capability_id=cap.id,
            version=cap.version,
            ok=error is None,
            output=output,
            error=error,
            error_kind=kind,
            traceback=result.error.traceback if result.error is not None else None,
            duration_s=result.duration_s,
            logs=list(result.logs),
            tier=result.tier,
            forced=force and cap.status == "deprecated",
        )
        if error is not None:
            run.blame = failure_blame(cap, value, result, error)
        run.deprecated_now = self._record(cap, run, started)
        return run

    def _record(self, cap: Capability, run: RunResult, started: float) -> bool:
        """Record an outcome; deprecate in the same transaction when the threshold is reached."""
        error = None if run.error is None else run.error[:_ERROR_TEXT_LIMIT]
        if error is not None and not run.counted:
            error = f"(not counted: {_BLAME_NOTE.get(run.blame or '', run.blame)}) {error}"
        outcome = CapabilityRun(
            capability_id=cap.id,
            version=cap.version,
            started_at=started,
            duration_s=run.duration_s,
            ok=run.ok,
            counted=run.counted,
            error_kind=run.error_kind,
            error=error,
            tier=run.tier,
            forced=run.forced,
        )
        return self._capabilities.record_run(
            outcome, deprecate_after=self.deprecate_after, reason=_auto_deprecation_reason
        )

    # -- status ------------------------------------------------------------------------------
    def deprecate(self, cap_id: str, reason: str) -> Capability:
        """Retire a capability: it leaves search results and refuses to run unless forced."""
        if not reason.strip():
            raise CapabilityError("say why the capability is deprecated (a reason is required)")
        self.get(cap_id)
        self._capabilities.deprecate(cap_id, reason.strip())
        return self.get(cap_id)

    def restore(self, cap_id: str) -> Capability:
        """Make a deprecated or legacy capability active again (its failure streak restarts)."""
        self.get(cap_id)
        self._capabilities.restore(cap_id)
        return self.get(cap_id)

    def doctor(
        self, ids: Sequence[str] | None = None, *, restore: bool = True
    ) -> builtins.list[DoctorEntry]:
        """Re-run the examples of deprecated capabilities (or of `ids`) in the sandbox, on a
        copy of their data, and restore those deprecated for failing whose examples pass
        again (a server that came back, a fixed data file). One deprecated by hand is only
        checked: its reason was a person's decision. `restore=False` only reports."""
        caps = [self.get(i) for i in ids] if ids else self.list(status="deprecated")
        entries: builtins.list[DoctorEntry] = []
        for cap in caps:
            failures = self._run_examples(cap)
            passed = not failures
            restored = False
            auto = cap.status == "deprecated" and bool(
                _AUTO_DEPRECATION.match(cap.status_reason or "")
            )
            if not passed:
                note = f"{len(failures)} of {len(cap.examples)} example(s) still fail"
            elif cap.status != "deprecated":
                note = f"examples pass; it is {cap.status}"
            elif not auto:
                note = (
                    "examples pass, but it was deprecated by hand "
                    f"({cap.status_reason or 'no reason given'}); left as it is"
                )
            elif restore:
                self.restore(cap.id)
                restored = True
                note = "examples pass again: restored"
            else:
                note = "examples pass again: would be restored"
            entries.append(DoctorEntry(cap.id, cap.status, passed, restored, note, list(failures)))
        return entries

    def _set_status(
        self, cap_id: str, status: str, reason: str | None, replaced_by: str | None
    ) -> None:
        self._capabilities.set_status(cap_id, status, reason, replaced_by)

    # -- folders -----------------------------------------------------------------------------
    def import_dir(self, path: str | Path) -> ImportReport:
        """Import every capability folder under `path` (or `path` itself if it is one).

        Seed data in `<path>/data/<folder>/` is copied into `<data_root>/<folder>/` first,
        file by file, never overwriting (so examples see it, and real data is kept). An
        unchanged capability is skipped, a changed one becomes a new version; a refused one
        is reported in `failed` and the others are still imported.
        """
        root = Path(path).expanduser()
        if not root.is_dir():
            raise CapabilityError(f"{root} is not a folder of capabilities")
        report = ImportReport()
        seed = root / "data"
        if seed.is_dir():
            for folder in sorted(p for p in seed.iterdir() if p.is_dir()):
                validate_id(folder.name, what="data folder name")
                for name in copy_seed_data(folder, self.data_root / folder.name):
                    report.seeded.append(f"{folder.name}/{name}")
        dirs = list(iter_capability_dirs(root))
        if not dirs:
            raise CapabilityError(
                f"{root} holds no capability folders (each needs capability.py and capability.toml)"
            )
        to_index: builtins.list[Capability] = []  # embedded in one batch at the end
        for folder in dirs:
            try:
                cap = read_capability_dir(folder)
                existing = self._get_or_none(cap.id)
                if existing is None:
                    to_index.append(self._add(cap.with_(status="active"), index=False))
                    report.added.append(cap.id)
                elif _same_content(existing, cap):
                    report.unchanged.append(cap.id)
                else:
                    to_index.append(self._replace(cap.id, cap.with_(status="active"), index=False))
                    report.updated.append(cap.id)
                if cap.status != "active":
                    self._set_status(cap.id, cap.status, cap.status_reason, cap.replaced_by)
            except CapabilityError as exc:
                report.failed.append((str(folder), str(exc)))
        self._upsert_index(to_index)
        return report

    def export_dir(
        self, path: str | Path, ids: Sequence[str] | None = None, *, include_data: bool = False
    ) -> builtins.list[Path]:
        """Write capabilities as folders under `path`; with `include_data`, their data
        folders too (as `<path>/data/<folder>/`, the form `import_dir` seeds from)."""
        root = Path(path).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        caps = [self.get(i) for i in ids] if ids else self.list()
        written = [write_capability_dir(c, root) for c in caps]
        if include_data:
            for folder in sorted({c.data_folder_name for c in caps}):
                src = self.data_root / folder
                if src.is_dir():
                    copy_seed_data(src, root / "data" / folder)
        return written

    def as_tools(self, format: str = "openai") -> builtins.list[dict[str, Any]]:
        """The active capabilities as tool definitions: "openai" (Chat Completions `tools`),
        "anthropic" (Messages `tools`) or "mcp" (`tools/list` entries). Route a model's call
        to `run` with `symbiont.mcp.schemas.run_tool_call(library, name, arguments)`."""
        from symbiont.mcp.schemas import capability_tools

        return capability_tools(self.list(status="active"), format)


def _auto_deprecation_reason(streak: int, error: str) -> str:
    """The reason an automatic deprecation gives (`_AUTO_DEPRECATION` recognises it)."""
    return f"failed {streak} times in a row; last error: {error[:300]}"


def capability_policy() -> Policy:
    """The policy for capabilities: the pipeline's default plus `CAPABILITY_DENIED_IMPORTS`,
    never denying a module of `CAPABILITY_ALLOWED_MODULES`."""
    from symbiont.pipeline import DEFAULT_POLICY

    return DEFAULT_POLICY.extend(imports=CAPABILITY_DENIED_IMPORTS).allow(
        imports=frozenset(CAPABILITY_ALLOWED_MODULES)
    )


def _with_host_hint(d: Diagnostic) -> Diagnostic:
    """A refused import or builtin (open, os, socket...) says where a capability's I/O goes."""
    if d.stage != "policy" or "symbiont.host" in d.message:
        return d
    if d.kind not in ("denied_import", "denied_name", "denied_attribute", "denied_call"):
        return d
    return dataclasses.replace(d, message=f"{d.message.rstrip('.')}; {_HOST_HINT}")


def _symbiont_imports(tree: ast.Module, source: str) -> list[Diagnostic]:
    """Imports of symbiont itself other than `symbiont.host` (the store, the sandbox...)."""
    from symbiont.diagnostics import caret_excerpt

    out: list[Diagnostic] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = (
                [node.module]
                if node.module != "symbiont"
                else [f"symbiont.{a.name}" for a in node.names]
            )
        if not names:
            continue
        assert isinstance(node, ast.Import | ast.ImportFrom)  # only they give names
        line, col = node.lineno, node.col_offset + 1
        for name in names:
            if (name == "symbiont" or name.startswith("symbiont.")) and name != "symbiont.host":
                out.append(
                    Diagnostic(
                        "policy",
                        "denied_import",
                        f"a capability may import only `symbiont.host` from symbiont, not "
                        f"`{name}`; reach the outside world through the host functions",
                        line,
                        col,
                        caret_excerpt(source, line, col),
                    )
                )
    return out


def _same_content(a: Capability, b: Capability) -> bool:
    """Same code and metadata (what a folder holds), whatever the stored version and stats."""
    return (
        a.source.strip() == b.source.strip()
        and a.entry == b.entry
        and " ".join(a.summary.split()) == " ".join(b.summary.split())
        and a.name.strip() == b.name.strip()
        and a.permissions == b.permissions
        and len(a.examples) == len(b.examples)
        and all(
            json_equal(x.to_dict(), y.to_dict())
            for x, y in zip(a.examples, b.examples, strict=True)
        )
    )


_MAX_LISTED_PROBLEMS = 8


def _listed(problems: Sequence[str]) -> str:
    """Every problem (typo hints first, as `validate` orders them), up to a cap."""
    shown = "; ".join(problems[:_MAX_LISTED_PROBLEMS])
    rest = len(problems) - _MAX_LISTED_PROBLEMS
    return shown + (f"; and {rest} more" if rest > 0 else "")


def parse_input(value: Mapping[str, Any] | str) -> dict[str, Any]:
    """The input as a dict. JSON text is read strictly, exactly as every sandbox tier reads
    it (`symbiont.sandbox.base.parse_input`: NaN, Infinity, numbers that overflow a float,
    duplicate keys and absurd nesting are refused); syntax errors name the line and column."""
    if isinstance(value, str):
        from symbiont.sandbox.base import parse_input as strict_parse

        text = value
        try:
            value = strict_parse(text)
        except CapabilityError as exc:
            try:
                json.loads(text)  # a plain parse, for a syntax error's line and column
            except json.JSONDecodeError as syntax:
                raise InvalidInput(
                    f"the input is not valid JSON: {syntax.msg} at line {syntax.lineno}, "
                    f"column {syntax.colno} (character {syntax.pos})"
                ) from None
            except (ValueError, RecursionError):
                pass
            raise InvalidInput(str(exc)) from None
    if not isinstance(value, Mapping):
        raise InvalidInput(
            f'the input must be a JSON object of named arguments, like {{"x": 1}}; got '
            f"{type(value).__name__}"
        )
    return dict(value)
