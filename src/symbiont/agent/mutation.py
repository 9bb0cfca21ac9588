"""The mutation agent: writes, builds and tests a new capability until it may be stored.

    result = MutationAgent(library, model).run("average base salary of a department")
    result.capability.id        # stored, verified, searchable

The model works through tools (`read_capability`, `list_capabilities`, `write_source`,
`build`, `test`, `complete`). What makes it trustworthy, against the Self-Evolving Agent
Runtime it replaces:

- `build` is the library's own pipeline (parse, signature and schema, policy, type check);
  `test` runs in the library's sandbox, never on the host, on a *copy* of the data folder,
  so trying an update capability cannot damage real data;
- `complete` is refused until build and test passed on the *latest* written source, and when
  the summary is empty or only says that it worked (such summaries ruin retrieval); the
  library's `add` then verifies everything once more before storing;
- diagnostics go back to the model; the same error three times in a row earns a hint; code
  identical to a version that already failed restarts the conversation with a note; a step
  cap ends the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symbiont.agent._recorder import EventHandler, Recorder, preview
from symbiont.agent.prompts import render
from symbiont.agent.tools import (
    MUTATION_TOOLS,
    Tool,
    ToolError,
    assistant_message,
    error_result,
    ok_result,
    parse_arguments,
    tool_message,
    tool_specs,
)
from symbiont.agent.transcripts import TranscriptStore
from symbiont.errors import CapabilityError, ModelError, SandboxError, SymbiontError
from symbiont.library import Capability, CapabilityPermissions, Example, Library, validate
from symbiont.library.capability import (
    SourceSyntaxError,
    check_example,
    validate_id,
    validate_summary,
)
from symbiont.models.base import Message, Model

__all__ = ["MutationAgent", "MutationResult"]

# complete() refuses summaries that only report success instead of describing the capability.
_SUCCESS_WORDS = re.compile(
    r"\b(success(ful(ly)?)?|succeeded|passe[sd]|pass(ing)?|works?|worked|working|done|"
    r"complete[ds]?|completion|finished|built|tested|tests?|builds?|ok(ay)?|all|and|the|it|"
    r"has|have|been|was|were|is|are|now|capability|function|code|implementation|implemented|"
    r"created|written|ready|task)\b",
    re.IGNORECASE,
)
_REPEAT_LIMIT = 3  # the same error this many times in a row earns a hint


@dataclass(slots=True)
class MutationResult:
    """How a mutation run ended: `completed` (capability stored), `step_limit` or `error`."""

    outcome: str
    capability: Capability | None
    steps: int
    transcript_id: int
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome == "completed" and self.capability is not None


@dataclass(slots=True)
class _Case:
    label: str
    input: dict[str, Any]
    ok: bool
    output: Any = None
    error: str | None = None
    reason: str | None = None
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"case": self.label, "input": self.input, "ok": self.ok}
        if self.skipped:
            out["skipped"] = True
        if self.error is not None:
            out["error"] = self.error
        else:
            out["output"] = self.output
        if self.reason is not None:
            out["why"] = self.reason
        return out


@dataclass(slots=True)
class _Session:
    """The state of one mutation run: the latest source and what passed on it."""

    task: str
    parent: Capability | None
    replace_parent: bool
    source: str | None = None
    entry: str | None = None
    permissions: CapabilityPermissions = field(default_factory=CapabilityPermissions)
    schemas: tuple[dict[str, Any], dict[str, Any]] | None = None  # set by a passing build
    built: bool = False
    tested: bool = False
    examples: list[Example] = field(default_factory=list)
    failed_sources: dict[str, str] = field(default_factory=dict)  # code hash -> its failure
    error_streak: list[str] = field(default_factory=list)
    # The latest build/test/complete error *about the current source*; a new source clears
    # it (the closing message once blamed `no_source` on a run that had written one).
    last_error: str | None = None
    stored: Capability | None = None
    reset_note: str | None = None

    @property
    def source_hash(self) -> str | None:
        return None if self.source is None else _code_hash(self.source)


def _code_hash(code: str) -> str:
    lines = [line.rstrip() for line in code.strip().splitlines()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _strip_fences(code: str) -> str:
    """Models often wrap code in a Markdown fence even inside a JSON string argument."""
    match = re.search(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)\n?```", code, re.DOTALL)
    return match.group(1) if match else code


class MutationAgent:
    """Writes a new capability (optionally from a parent) with a model, through tools.

    `max_steps` caps the model calls. The capability is stored with `library.add`, or with
    `library.replace(parent, new)` when it replaces its parent (which becomes legacy).
    """

    def __init__(
        self,
        library: Library,
        model: Model,
        *,
        max_steps: int = 16,
        transcripts: TranscriptStore | None = None,
        on_event: EventHandler | None = None,
        max_retries: int = 5,
    ) -> None:
        if max_steps < 1:
            raise SymbiontError(f"max_steps must be at least 1, not {max_steps}")
        self.library = library
        self.model = model
        self.max_steps = max_steps
        self._owns_transcripts = transcripts is None
        self.transcripts = transcripts or library.store.transcripts
        self.on_event = on_event
        self.max_retries = max_retries

    def close(self) -> None:
        if self._owns_transcripts:
            self.transcripts.close()

    def run(
        self,
        task: str,
        parent_id: str | None = None,
        *,
        replace_parent: bool = False,
        parent_transcript: int | None = None,
    ) -> MutationResult:
        """Synchronous `arun` (starts its own event loop)."""
        return asyncio.run(
            self.arun(
                task,
                parent_id,
                replace_parent=replace_parent,
                parent_transcript=parent_transcript,
            )
        )

    async def arun(
        self,
        task: str,
        parent_id: str | None = None,
        *,
        replace_parent: bool = False,
        parent_transcript: int | None = None,
    ) -> MutationResult:
        task = task.strip()
        if not task:
            raise SymbiontError("the mutation task is empty; say what the capability must do")
        parent = self.library.get(parent_id) if parent_id is not None else None
        session = _Session(task, parent, replace_parent and parent is not None)
        if parent is not None:
            session.permissions = parent.permissions
            session.examples = list(parent.examples)
        rec = Recorder(
            self.transcripts,
            agent="mutation",
            task=task,
            model=self.model,
            parent_id=parent_transcript,
            config={
                "max_steps": self.max_steps,
                "parent": parent_id,
                "replace_parent": session.replace_parent,
            },
            on_event=self.on_event,
        )
        rec.emit(
            "start",
            f"mutation agent: {preview(task, 120)}" + (f" (from {parent_id})" if parent_id else ""),
            parent=parent_id,
        )
        initial = self._initial_messages(session)
        messages: list[Message] = list(initial)
        specs = tool_specs(MUTATION_TOOLS)
        try:
            while rec.model_calls < self.max_steps:
                reply = await rec.ask(self.model, messages, specs, max_retries=self.max_retries)
                if not reply.tool_calls:
                    messages.append(assistant_message(reply))
                    messages.append({"role": "user", "content": render("mutation.nudge")})
                    rec.step("note", {"note": "reply without a tool call; nudged"})
                    continue
                pending = [assistant_message(reply)]
                reset = False
                for call in reply.tool_calls:
                    content = self._call_tool(session, rec, call.name, call.arguments)
                    if session.reset_note is not None:
                        reset = True
                        break
                    pending.append(tool_message(call.id, content))
                    if session.stored is not None:
                        break
                if reset:
                    note = session.reset_note or ""
                    session.reset_note = None
                    messages = [*initial, {"role": "user", "content": note}]
                    rec.conversation_reset()
                    rec.step("note", {"note": "identical code resubmitted; conversation reset"})
                    rec.emit("note", "identical code resubmitted: conversation restarted")
                    continue
                if session.stored is not None:
                    # answer any calls after complete so the stored conversation is well formed
                    answered = {m.get("tool_call_id") for m in pending[1:]}
                    for call in reply.tool_calls:
                        if call.id not in answered:
                            pending.append(
                                tool_message(call.id, ok_result(note="ignored: already completed"))
                            )
                    messages.extend(pending)
                    cap = session.stored
                    rec.store.finish(rec.id, "completed", capability_id=cap.id, messages=messages)
                    rec.emit("end", f"stored {cap.id}", ok=True, capability_id=cap.id)
                    return self._result("completed", cap, rec)
                messages.extend(pending)
        except ModelError as exc:
            rec.store.finish(rec.id, "error", error=str(exc), messages=messages)
            rec.emit("error", f"model error: {exc}", ok=False)
            return self._result("error", None, rec, str(exc))
        except BaseException as exc:
            rec.store.finish(
                rec.id, "error", error=f"interrupted: {type(exc).__name__}", messages=messages
            )
            raise
        last = session.last_error
        message = (
            f"the mutation agent stopped at its step limit ({self.max_steps} model calls) "
            f"without a completed capability ({_progress(session)})"
            + (f"; last error: {last}" if last else "")
        )
        rec.store.finish(rec.id, "step_limit", error=message, messages=messages)
        rec.emit("step_limit", message, ok=False)
        return self._result("step_limit", None, rec, message)

    def _result(
        self, outcome: str, cap: Capability | None, rec: Recorder, error: str | None = None
    ) -> MutationResult:
        return MutationResult(
            outcome, cap, rec.model_calls, rec.id, error, rec.input_tokens, rec.output_tokens
        )

    # -- prompts --------------------------------------------------------------------------------
    def _initial_messages(self, session: _Session) -> list[Message]:
        parent_block = ""
        if session.parent is not None:
            p = session.parent
            parent_block = render(
                "mutation.parent",
                id=p.id,
                version=p.version,
                status=p.status,
                replace_note=" and replaces it (it becomes legacy)"
                if session.replace_parent
                else "",
                summary=p.summary,
                permissions=json.dumps(p.permissions.to_dict()),
                examples="\n".join(
                    f"- {json.dumps(e.to_dict(), ensure_ascii=False)}" for e in p.examples
                )
                or "(none)",
                source=p.source.rstrip(),
            )
        existing = ""
        try:
            hits = self.library.search(session.task, 5)
        except CapabilityError:
            hits = []
        if hits:
            existing = render(
                "mutation.existing",
                listing="\n".join(f"- {h.capability.id}: {h.capability.summary}" for h in hits),
            )
        user = render(
            "mutation.user",
            task=session.task,
            parent=parent_block,
            data_folders=", ".join(self._data_folders()) or "(none)",
            existing=existing,
        )
        return [
            {"role": "system", "content": render("mutation.system")},
            {"role": "user", "content": user},
        ]

    def _data_folders(self) -> list[str]:
        root = self.library.data_root
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))

    # -- tool dispatch --------------------------------------------------------------------------
    def _call_tool(self, session: _Session, rec: Recorder, name: str, raw: str) -> str:
        started = time.perf_counter()
        tool = next((t for t in MUTATION_TOOLS if t.name == name), None)
        ok = False
        hint: str | None = None
        try:
            if tool is None:
                raise ToolError(
                    "unknown_tool",
                    f"there is no tool {name!r}; the tools are "
                    + ", ".join(t.name for t in MUTATION_TOOLS),
                )
            args = parse_arguments(tool, raw)
            content = self._dispatch(session, tool, args)
            ok = True
            if name in ("build", "test"):
                session.error_streak.clear()
        except ToolError as err:
            if name in ("build", "test", "complete"):
                signature = f"{err.kind}: {err.message}"
                streak = session.error_streak
                if streak and streak[-1] != signature:
                    streak.clear()
                streak.append(signature)
                session.last_error = signature
                if len(streak) >= _REPEAT_LIMIT:
                    hint = render("mutation.repeated_error", error=err.message)
                    err.extra["hint"] = hint
            content = error_result(err)
        except SandboxError as exc:
            content = error_result(ToolError("sandbox_unavailable", str(exc)))
        except Exception as exc:  # a bug or an unexpected failure must not end the run
            content = error_result(
                ToolError("tool_failed", f"{name} failed unexpectedly: {type(exc).__name__}: {exc}")
            )
        duration = time.perf_counter() - started
        if session.reset_note is not None:
            return content
        rec.step(
            "tool",
            {"arguments": raw, "result": content},
            name=name,
            ok=ok,
            duration_s=duration,
        )
        rec.emit(
            "tool",
            f"{name} → {'ok' if ok else _error_line(content)}",
            name=name,
            ok=ok,
            arguments=raw,
            result=content,
            duration_s=duration,
        )
        if hint is not None:
            rec.emit("note", "same error three times in a row: hint added", name=name)
        return content

    def _dispatch(self, session: _Session, tool: Tool, args: dict[str, Any]) -> str:
        if tool.name == "read_capability":
            return self._read_capability(str(args["id"]))
        if tool.name == "list_capabilities":
            return self._list_capabilities(str(args["query"]))
        if tool.name == "write_source":
            return self._write_source(session, args)
        if tool.name == "build":
            return self._build(session)
        if tool.name == "test":
            return self._test(session, args)
        if tool.name == "complete":
            return self._complete(session, args)
        raise ToolError("unknown_tool", f"there is no tool {tool.name!r}")

    # -- the tools ------------------------------------------------------------------------------
    def _read_capability(self, cap_id: str) -> str:
        try:
            cap = self.library.get(cap_id)
        except CapabilityError as exc:
            raise ToolError("unknown_capability", str(exc)) from None
        return ok_result(
            id=cap.id,
            summary=cap.summary,
            entry=cap.entry,
            status=cap.status,
            version=cap.version,
            input_schema=cap.input_schema,
            output_schema=cap.output_schema,
            permissions=cap.permissions.to_dict(),
            examples=[e.to_dict() for e in cap.examples],
            source=cap.source,
        )

    def _list_capabilities(self, query: str) -> str:
        if not query.strip():
            raise ToolError("invalid_arguments", "the query is empty; say what to look for")
        try:
            hits = self.library.search(query, 8)
        except CapabilityError as exc:
            raise ToolError("search_failed", str(exc)) from None
        return ok_result(
            capabilities=[
                {"id": h.capability.id, "summary": h.capability.summary, "score": round(h.score, 4)}
                for h in hits
            ]
        )

    def _write_source(self, session: _Session, args: Mapping[str, Any]) -> str:
        code = _strip_fences(str(args["code"])).strip("\n")
        if not code.strip():
            raise ToolError("empty_source", "the code is empty; send the whole module")
        digest = _code_hash(code)
        previous_failure = session.failed_sources.get(digest)
        if previous_failure is not None:
            # The same code that already failed: start over rather than loop on it.
            session.reset_note = render("mutation.reset", error=previous_failure)
            return ""
        permissions = session.permissions
        if "permissions" in args:
            permissions = self._permissions(session, args["permissions"])
        entry = args.get("entry")
        if entry is not None:
            entry = str(entry)
        unchanged = (
            digest == session.source_hash
            and entry == session.entry
            and permissions == session.permissions
        )
        if not unchanged:
            session.source, session.entry, session.permissions = code, entry, permissions
            session.built = session.tested = False
            session.schemas = None
            session.last_error = None
        functions = re.findall(r"^def\s+([A-Za-z_]\w*)", code, re.MULTILINE)
        return ok_result(
            lines=len(code.splitlines()),
            functions=functions,
            permissions=permissions.to_dict(),
            note=(
                "unchanged: the earlier build and test results still hold"
                if unchanged
                else "source set; call build() next"
            ),
        )

    def _permissions(self, session: _Session, raw: Any) -> CapabilityPermissions:
        """Permissions the model asks for: files only, in an existing data folder.

        The model may not grant network access: `http_allow` is inherited from a parent only.
        """
        if not isinstance(raw, Mapping):
            raise ToolError("invalid_arguments", "permissions must be an object")
        base = session.parent.permissions if session.parent is not None else CapabilityPermissions()
        folder = raw.get("data", base.data)
        if folder is not None:
            folder = str(folder)
            try:
                validate_id(folder, what="data folder name")
            except CapabilityError as exc:
                raise ToolError("invalid_permissions", str(exc)) from None
            existing = self._data_folders()
            if folder not in existing:
                raise ToolError(
                    "invalid_permissions",
                    f"there is no data folder {folder!r}; the data folders are: "
                    + (", ".join(existing) or "(none)"),
                )
        return CapabilityPermissions(
            http_allow=base.http_allow,
            allow_private_network=base.allow_private_network,
            read_files=bool(raw.get("read_files", base.read_files)),
            write_files=bool(raw.get("write_files", base.write_files)),
            data=folder,
        )

    def _candidate(self, session: _Session, *, summary: str = "", examples: Any = ()) -> Capability:
        if session.source is None:
            raise ToolError("no_source", "there is no source yet; call write_source(code) first")
        try:
            draft = Capability.from_source(
                session.source,
                entry=session.entry,
                summary=summary or "draft",
                examples=examples,
                permissions=session.permissions,
            )
        except SourceSyntaxError as exc:
            raise self._fail(session, ToolError("syntax_error", str(exc), line=exc.line)) from None
        except CapabilityError as exc:
            raise ToolError(
                "no_entry",
                f"{exc}; pass entry=NAME to write_source to say which function is the capability, "
                "or make helpers private with a leading underscore",
            ) from None
        cap_id = self._new_id(draft.entry)
        return draft.with_(
            id=cap_id,
            name=draft.entry.replace("_", " ").strip().capitalize() or cap_id,
            parents=(session.parent.id,) if session.parent is not None else (),
        )

    def _new_id(self, entry: str) -> str:
        base = re.sub(r"[^a-z0-9_.-]", "_", entry.lower()).strip("_.-")[:70] or "capability"
        if not base[0].isalnum():
            base = "c" + base
        candidate, n = base, 1
        while candidate in self.library:
            n += 1
            candidate = f"{base}_v{n}"
        return candidate

    def _fail(self, session: _Session, error: ToolError) -> ToolError:
        """Remember that the current source failed (for identical resubmissions)."""
        if session.source is not None:
            session.failed_sources[_code_hash(session.source)] = error.message
        return error

    def _build(self, session: _Session) -> str:
        cap = self._candidate(session)
        try:
            _tree, schemas = check_source(self.library, cap)
        except CapabilityError as exc:
            diagnostics = getattr(exc, "diagnostics", ())
            raise self._fail(
                session,
                ToolError(
                    "build_failed",
                    str(exc),
                    diagnostics=[
                        {"stage": d.stage, "kind": d.kind, "message": d.message, "line": d.line}
                        for d in diagnostics
                    ],
                ),
            ) from None
        session.schemas = schemas
        session.built = True
        session.tested = False
        return ok_result(
            entry=cap.entry,
            input_schema=schemas[0],
            output_schema=schemas[1],
            note="build passed; call test() next",
        )

    def _test(self, session: _Session, args: Mapping[str, Any]) -> str:
        if session.source is None:
            raise ToolError("no_source", "there is no source yet; call write_source(code) first")
        if not session.built or session.schemas is None:
            raise ToolError(
                "not_built", "build() has not passed on the latest source; call build() first"
            )
        if "examples" in args:
            try:
                session.examples = [Example.from_dict(e) for e in args["examples"]]
            except CapabilityError as exc:
                raise ToolError("invalid_examples", str(exc)) from None
        extra = args.get("input")
        input_schema, output_schema = session.schemas
        if extra is not None:
            problems = validate(extra, input_schema, what="input")
            if problems:
                raise ToolError(
                    "invalid_input",
                    "the test input does not fit the input schema: " + "; ".join(problems[:3]),
                    input_schema=input_schema,
                )
        if not session.examples and extra is None:
            raise ToolError(
                "nothing_to_test",
                'give examples=[{"input": {...}, "expect": ...}] (or with "check") and/or input={...}',
            )
        cap = self._candidate(session).with_(input_schema=input_schema, output_schema=output_schema)
        cases: list[_Case] = []
        with self._data_copy(cap) as data_dir:
            for i, ex in enumerate(session.examples):
                if validate(ex.input, input_schema, what="input"):
                    from_parent = session.parent is not None and ex in session.parent.examples
                    if from_parent:
                        cases.append(
                            _Case(
                                ex.label(i),
                                ex.input,
                                True,
                                skipped=True,
                                reason="the parent's example no longer fits the input schema",
                            )
                        )
                        continue
                output, error = self._trial(cap, ex.input, data_dir)
                reason = check_example(ex, output, error)
                cases.append(_Case(ex.label(i), ex.input, reason is None, output, error, reason))
            if extra is not None:
                output, error = self._trial(cap, dict(extra), data_dir)
                cases.append(_Case("input", dict(extra), error is None, output, error))
        ran = [c for c in cases if not c.skipped]
        failed = [c for c in ran if not c.ok]
        if not ran:
            raise ToolError(
                "nothing_to_test",
                "none of the examples fits the new input schema; give examples=[...] for it",
                cases=[c.to_dict() for c in cases],
            )
        if failed:
            first = failed[0]
            why = first.reason or first.error or "failed"
            raise self._fail(
                session,
                ToolError(
                    "test_failed",
                    f"{len(failed)} of {len(ran)} test case(s) failed; {first.label} with input "
                    f"{preview(first.input, 200)}: {why}",
                    cases=[c.to_dict() for c in cases],
                ),
            )
        session.tested = True
        return ok_result(
            passed=len(ran),
            cases=[c.to_dict() for c in cases],
            note="build and test passed; call complete(summary, examples) to store it",
        )

    @contextlib.contextmanager
    def _data_copy(self, cap: Capability) -> Iterator[Path | None]:
        """A throwaway copy of the capability's data folder: tests never touch real data."""
        perms = cap.permissions
        if not (perms.read_files or perms.write_files):
            yield None
            return
        tmp = Path(tempfile.mkdtemp(prefix="symbiont-mutation-test-"))
        try:
            real = self.library.data_root / cap.data_folder_name
            copy = tmp / "data"
            if real.is_dir():
                shutil.copytree(real, copy, symlinks=True)
            else:
                copy.mkdir()
            yield copy
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _trial(
        self, cap: Capability, value: dict[str, Any], data_dir: Path | None
    ) -> tuple[Any, str | None]:
        """Run once in the sandbox: (output, error text) — an exception, a returned error
        value and an output that breaks the declared return type are all errors."""
        return self.library.outcome(
            cap, self.library.run_in_sandbox(cap, value, data_dir), verbose=True
        )

    def _complete(self, session: _Session, args: Mapping[str, Any]) -> str:
        def refuse(reason: str) -> ToolError:
            return ToolError("complete_refused", render("mutation.complete_refused", reason=reason))

        if session.source is None:
            raise refuse("there is no source; write_source, build and test it first")
        if not session.built:
            raise refuse(
                "build() has not passed on the latest source (code written after the last "
                "successful build must be built again)"
            )
        if not session.tested:
            raise refuse("test() has not passed on the latest source; call test() first")
        summary = " ".join(str(args["summary"]).split())
        if not summary:
            raise refuse("the summary is empty; say what the capability does, takes and returns")
        if _only_reports_success(summary):
            raise refuse(
                f"the summary {summary!r} only says that it worked; describe what the "
                "capability does, what it takes and what it returns (search matches this text)"
            )
        try:
            summary = validate_summary(summary)
        except CapabilityError as exc:
            raise refuse(str(exc)) from None
        raw_examples = args.get("examples")
        if raw_examples:
            try:
                examples = [Example.from_dict(e) for e in raw_examples]
            except CapabilityError as exc:
                raise refuse(str(exc)) from None
        else:
            examples = list(session.examples)
            if session.schemas is not None:
                examples = [e for e in examples if not validate(e.input, session.schemas[0])]
        if not examples:
            raise refuse("give examples (they are the capability's tests and are run again)")
        cap = self._candidate(session, summary=summary, examples=examples)
        try:
            if session.parent is not None and session.replace_parent:
                stored = self.library.replace(session.parent.id, cap)
            else:
                stored = self.library.add(cap)
        except CapabilityError as exc:
            raise refuse(f"the library refused to store it: {exc}") from None
        session.stored = stored
        return ok_result(
            capability_id=stored.id,
            version=stored.version,
            parents=list(stored.parents),
            note="stored",
        )


def _progress(session: _Session) -> str:
    """How far the run got with its latest source, for the closing message."""
    if session.source is None:
        return "no source was written"
    if session.tested:
        return "the latest source was written, built and tested, but complete() was not accepted"
    if session.built:
        return "the latest source was written and built, but its test did not pass"
    return "a source was written, but build() did not pass on the latest one"


def _only_reports_success(summary: str) -> bool:
    """True for summaries like "Implemented and tested successfully." that describe nothing."""
    words = re.findall(r"[A-Za-z]+", _SUCCESS_WORDS.sub(" ", summary))
    return len(words) < 3


def _error_line(content: str) -> str:
    try:
        body = json.loads(content)
        return preview(body["error"]["message"], 140)
    except (ValueError, KeyError, TypeError):
        return preview(content, 140)


def check_source(
    library: Library, cap: Capability
) -> tuple[Any, tuple[dict[str, Any], dict[str, Any]]]:
    """The library's build checks (parse, signature/schema, policy, type check) on `cap`.

    The build tool must run exactly the checks `Library.add` runs, not a copy of them.
    """
    return library.check_source(cap)  # type: ignore[no-any-return]
