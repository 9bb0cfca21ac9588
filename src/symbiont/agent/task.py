"""The task agent: a task in words → the few capabilities that fit → run one → an answer.

    agent = Agent(library, model)              # k=5 candidates, at most 12 model calls
    result = agent.run("What is employee E042's salary?")
    result.answer, result.outcome, result.transcript_id

The model sees the top-k capabilities for the task (hybrid search; deprecated ones are
excluded before the top k is taken) twice: listed with their ids, summaries and input
schemas, and as tools of their own whose parameters are their input schemas (names made
to fit the providers' `^[a-zA-Z0-9_-]{1,64}$`). Next to them are the library tools:
`search_capabilities` (what it finds becomes callable too), `run_capability` (in the
sandbox; outcome recorded), `create_capability` and `mutate_capability` (handed to the
`MutationAgent`).

A small model fakes success in a few typical ways, and each is caught:

- a tool call written as text (`{"name": ..., "arguments": {...}}`, fenced or broken) is
  not an answer: it is run when it names a real tool, otherwise sent back with the list of
  tools (`textcalls`);
- an answer given before any capability ran gets one reminder; if it stays, the run ends
  as `unverified` — "answered without running a capability" — never as `answered`;
- capabilities that write (`write_files` or `side_effects`) are neither offered nor run
  for a task that does not ask for a change (`intent.asks_for_change`); with
  `confirm_writes` a person is asked before each write;
- the same call with the same arguments three times in a row is not run but answered
  with a warning, and the next request offers no tools, so the model answers from the
  result it has; a fourth identical call ends the run (`repeated_call`).

A malformed call — bad JSON, an unknown tool or id, arguments that break the schema — is
answered with a tool error the model can act on; it never ends the run. Every step is kept
as a transcript.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from symbiont.agent._recorder import EventHandler, Recorder, preview
from symbiont.agent.intent import asks_for_change
from symbiont.agent.mutation import MutationAgent
from symbiont.agent.prompts import render
from symbiont.agent.textcalls import TextCall, find_text_calls
from symbiont.agent.tools import (
    TASK_TOOLS,
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
from symbiont.library import (
    Capability,
    CapabilityDeprecated,
    CapabilityNotFound,
    InvalidInput,
    Library,
    SearchResult,
)
from symbiont.models.base import Message, Model, ToolCall

__all__ = ["OUTCOMES", "Agent", "AgentResult"]

OUTCOMES = ("answered", "unverified", "step_limit", "repeated_call", "error")
UNVERIFIED_NOTE = "answered without running a capability"

# How many identical calls in a row are run; the next one is answered with a warning
# instead, and one more after that ends the run.
REPEAT_LIMIT = 2
COMPOSE_RESULTS = 3  # the last successful results shown when the answer is asked for
COMPOSE_RESULT_CHARS = 4000
MAX_CAPABILITY_TOOLS = 12  # offered plus found by search: the tool list stays short
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

ConfirmWrite = Callable[[Capability, dict[str, Any]], bool]


@dataclass(slots=True)
class AgentResult:
    """How a task ended.

    `outcome`: answered (after running a capability), unverified (an answer given without
    running any capability), step_limit, repeated_call or error (then `error` says why).
    """

    task: str
    answer: str | None
    outcome: str
    steps: int  # model calls made by the task agent (mutation runs have their own)
    transcript_id: int
    error: str | None = None
    offered: list[str] = field(default_factory=list)  # ids in the first prompt
    ran: list[str] = field(default_factory=list)  # ids run (successfully or not)
    created: list[str] = field(default_factory=list)  # ids stored by mutation runs
    withheld: list[str] = field(default_factory=list)  # writers not offered (read-only task)
    mutation_transcripts: list[int] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    change_requested: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "answered"


class _Compose(Exception):
    """The model repeated a call that already succeeded: ask it for the answer instead."""

    def __init__(self, tool: str) -> None:
        super().__init__(tool)
        self.tool = tool


class _Stop(Exception):
    """Ends the run with an outcome other than an answer."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


@dataclass(slots=True)
class _Run:
    """The state of one task run."""

    result: AgentResult
    change_requested: bool
    cap_tools: dict[str, Tool] = field(default_factory=dict)  # tool name -> tool
    cap_of_tool: dict[str, str] = field(default_factory=dict)  # tool name -> capability id
    tool_of_cap: dict[str, str] = field(default_factory=dict)  # capability id -> tool name
    last_call: str | None = None
    repeats: int = 0
    reminded: bool = False
    tool_calls: int = 0
    answer_only: bool = False  # the next request offers no tools (after a repeat warning)
    last_ok: bool = False  # the last call succeeded
    results: list[str] = field(default_factory=list)  # successful capability runs, as shown
    composed: bool = False  # the answer was already asked for from the results

    def tools(self) -> list[Tool]:
        return [*TASK_TOOLS, *self.cap_tools.values()]

    def tool_names(self) -> list[str]:
        return [t.name for t in self.tools()]


class Agent:
    """Solves tasks with the capabilities of `library`, asking `model` what to do.

    `mutation_model` (default: `model`) writes new capabilities; `mutation_max_steps` caps
    each mutation run. `on_event` receives every step as it happens (the CLI prints them).
    `confirm_writes`, when given, is asked before a capability that writes runs (with the
    capability and its input); False refuses the run.
    """

    def __init__(
        self,
        library: Library,
        model: Model,
        *,
        k: int = 5,
        max_steps: int = 12,
        mutation_model: Model | None = None,
        mutation_max_steps: int = 16,
        transcripts: TranscriptStore | None = None,
        on_event: EventHandler | None = None,
        max_retries: int = 5,
        confirm_writes: ConfirmWrite | None = None,
    ) -> None:
        if k < 1:
            raise SymbiontError(f"k must be at least 1, not {k}")
        if max_steps < 1:
            raise SymbiontError(f"max_steps must be at least 1, not {max_steps}")
        self.library = library
        self.model = model
        self.k = k
        self.max_steps = max_steps
        self._owns_transcripts = transcripts is None
        self.transcripts = transcripts or library.store.transcripts
        self.on_event = on_event
        self.max_retries = max_retries
        self.confirm_writes = confirm_writes
        self.mutation = MutationAgent(
            library,
            mutation_model or model,
            max_steps=mutation_max_steps,
            transcripts=self.transcripts,
            on_event=on_event,
            max_retries=max_retries,
        )

    def close(self) -> None:
        if self._owns_transcripts:
            self.transcripts.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, task: str) -> AgentResult:
        """Synchronous `arun` (starts its own event loop; use `arun` inside one)."""
        return asyncio.run(self.arun(task))

    async def arun(self, task: str) -> AgentResult:
        task = task.strip()
        if not task:
            raise SymbiontError("the task is empty; say what you want done")
        change = asks_for_change(task)
        rec = Recorder(
            self.transcripts,
            agent="task",
            task=task,
            model=self.model,
            parent_id=None,
            config={
                "k": self.k,
                "max_steps": self.max_steps,
                "tier": self.library.tier,
                "change_requested": change,
                "confirm_writes": self.confirm_writes is not None,
            },
            on_event=self.on_event,
        )
        result = AgentResult(task, None, "error", 0, rec.id, change_requested=change)
        run = _Run(result, change)
        messages: list[Message] = []
        try:
            hits = self._retrieve(task, rec, run)
            result.offered = [h.capability.id for h in hits]
            for hit in hits:
                self._offer(run, hit.capability)
            messages = [
                {"role": "system", "content": render("task.system")},
                {
                    "role": "user",
                    "content": render(
                        "task.user", task=task, candidates=_listing(hits, run.tool_of_cap)
                    ),
                },
            ]
            while rec.model_calls < self.max_steps:
                # After the repeat warning the model is asked with no tools at all: a small
                # model offered tools calls one again instead of reading the result it has.
                specs = None if run.answer_only else tool_specs(run.tools())
                run.answer_only = False
                reply = await rec.ask(self.model, messages, specs, max_retries=self.max_retries)
                calls = list(reply.tool_calls)
                if not calls:
                    text = reply.text.strip()
                    found = find_text_calls(text, known=[*run.tool_names(), *run.tool_of_cap])
                    if found:
                        calls = self._calls_from_text(rec, run, messages, text, found)
                        if not calls:
                            continue
                        messages.append(
                            {
                                "role": "assistant",
                                "content": "",
                                "tool_calls": [_call_dict(c) for c in calls],
                            }
                        )
                    elif not text:
                        messages.append(assistant_message(reply))
                        messages.append({"role": "user", "content": render("task.empty_reply")})
                        rec.step("note", {"note": "empty reply; asked again"})
                        continue
                    else:
                        messages.append(assistant_message(reply))
                        if self._accept_answer(rec, run, messages, text):
                            break
                        continue
                else:
                    messages.append(assistant_message(reply))
                if await self._run_calls(rec, run, messages, calls):
                    break
            else:
                result.outcome = "step_limit"
                result.error = (
                    f"stopped at the step limit ({self.max_steps} model calls) without an answer"
                )
        except _Stop as stop:
            result.outcome, result.error = stop.outcome, stop.reason
        except ModelError as exc:
            result.outcome, result.error = "error", f"model error: {exc}"
        except BaseException as exc:
            self._finish(rec, result, messages, f"interrupted: {type(exc).__name__}: {exc}")
            raise
        self._finish(rec, result, messages)
        return result

    async def _run_calls(
        self, rec: Recorder, run: _Run, messages: list[Message], calls: list[ToolCall]
    ) -> bool:
        """Run the model's tool calls, each answered by a tool message. True when the task
        was answered on the way (a repeated successful call turned into an answer)."""
        for i, call in enumerate(calls):
            try:
                content = await self._call_tool(rec, run, call.name, call.arguments)
            except _Compose as repeat:
                note = (
                    f"{repeat.tool} was already run with these arguments; its result is above "
                    "and will not change"
                )
                messages.append(
                    tool_message(call.id, error_result(ToolError("repeated_call", note)))
                )
                for rest in calls[i + 1 :]:
                    messages.append(
                        tool_message(rest.id, error_result(ToolError("not_run", "not run")))
                    )
                return await self._compose(rec, run, messages)
            messages.append(tool_message(call.id, content))
        return False

    async def _compose(self, rec: Recorder, run: _Run, messages: list[Message]) -> bool:
        """Ask for the answer from the results, in a request of its own without tools.

        A small model that has a capability's result often calls the capability again (or
        writes the call and an invented result as text) instead of answering: the tool
        history in its chat template pulls it back to calling. Asked the question with the
        data and nothing else, it answers. The answer counts only if it is plain text;
        otherwise the run goes on with the usual repeat warning (no tools offered)."""
        run.answer_only = True
        rec.step(
            "note", {"note": "a successful call repeated: asked for the answer from its result"}
        )
        rec.emit("note", "the same call again: asking for the answer from the result it has")
        ask: list[Message] = [
            {"role": "system", "content": render("task.compose_system")},
            {
                "role": "user",
                "content": render(
                    "task.compose_user",
                    task=run.result.task,
                    results="\n\n".join(run.results[-COMPOSE_RESULTS:]),
                ),
            },
        ]
        reply = await rec.ask(self.model, ask, None, max_retries=self.max_retries)
        text = reply.text.strip()
        messages.append(ask[1])
        messages.append(assistant_message(reply))
        if not text or reply.tool_calls:
            return False
        if find_text_calls(text, known=[*run.tool_names(), *run.tool_of_cap]):
            return False
        run.result.answer, run.result.outcome = text, "answered"
        rec.step("note", {"note": "answered from the results, without tools"})
        return True

    def _accept_answer(self, rec: Recorder, run: _Run, messages: list[Message], text: str) -> bool:
        """A plain-text reply is the answer. Before any tool call it earns one reminder to run a
        capability; an answer with no capability run is recorded as `unverified`."""
        result = run.result
        if result.ran:
            result.answer, result.outcome = text, "answered"
            return True
        if not run.reminded and run.tool_calls == 0:
            run.reminded = True
            messages.append(
                {
                    "role": "user",
                    "content": render("task.unverified", tools=", ".join(run.tool_names())),
                }
            )
            rec.step("note", {"note": "answer before any capability ran; reminded once"})
            rec.emit("note", "answer without running a capability: reminded to run one")
            return False
        result.answer, result.outcome, result.error = text, "unverified", UNVERIFIED_NOTE
        rec.step("note", {"note": UNVERIFIED_NOTE})
        return True

    def _calls_from_text(
        self,
        rec: Recorder,
        run: _Run,
        messages: list[Message],
        text: str,
        found: list[TextCall],
    ) -> list[ToolCall]:
        """Tool calls written as text: the readable ones naming real tools become calls; for
        the rest the model is told what went wrong (and nothing counts as an answer)."""
        known = [c for c in found if c.readable and self._resolve_name(run, c.name) is not None]
        if known:
            calls = [
                ToolCall(
                    f"text_call_{rec.model_calls}_{i}",
                    self._resolve_name(run, c.name) or "",
                    c.arguments,
                )
                for i, c in enumerate(known)
            ]
            rec.step(
                "note",
                {"note": "tool call written as text; run as a tool call", "text": text[:2000]},
            )
            rec.emit("note", f"tool call written as text: running {calls[0].name}")
            return calls
        messages.append({"role": "assistant", "content": text})
        first = found[0]
        tools = ", ".join(run.tool_names())
        if first.name is not None and self._resolve_name(run, first.name) is not None:
            note = render(
                "task.text_call_broken", called=first.name, problem=first.problem, tools=tools
            )
        else:
            note = render("task.text_call_unknown", called=first.name or "?", tools=tools)
        messages.append({"role": "user", "content": note})
        rec.step("note", {"note": "tool call written as text, not run", "text": text[:2000]})
        rec.emit("note", f"tool call written as text ({first.name or '?'}): sent back")
        return []

    def _finish(
        self,
        rec: Recorder,
        result: AgentResult,
        messages: list[Message],
        interrupted: str | None = None,
    ) -> None:
        result.steps = rec.model_calls
        result.input_tokens = rec.input_tokens
        result.output_tokens = rec.output_tokens
        outcome = "error" if interrupted else result.outcome
        rec.store.finish(
            rec.id,
            outcome,
            answer=result.answer,
            error=interrupted or result.error,
            messages=messages,
        )
        if interrupted:
            return
        if result.outcome == "answered":
            rec.emit("answer", result.answer or "", ok=True)
        elif result.outcome == "unverified":
            rec.emit("answer", f"({UNVERIFIED_NOTE}) {result.answer or ''}", ok=False)
        else:
            rec.emit(result.outcome, result.error or result.outcome, ok=False)

    # -- retrieval ------------------------------------------------------------------------------
    def _retrieve(self, task: str, rec: Recorder, run: _Run) -> list[SearchResult]:
        started = time.perf_counter()
        try:
            # Writers left out of a read-only task must not shrink the k offered.
            hits = self.library.search(task, self.k if run.change_requested else 2 * self.k)
            error = None
        except CapabilityError as exc:  # e.g. an empty library without an index yet
            hits, error = [], str(exc)
        hits, withheld = self._allowed(run, hits)
        hits = hits[: self.k]
        run.result.withheld = withheld
        duration = time.perf_counter() - started
        found = [{"id": h.capability.id, "score": round(h.score, 6), "why": h.why} for h in hits]
        rec.step(
            "retrieve",
            {
                "query": task,
                "k": self.k,
                "results": found,
                "error": error,
                "change_requested": run.change_requested,
                "withheld_writers": withheld,
            },
            duration_s=duration,
        )
        rec.emit(
            "retrieve",
            f"retrieved {len(hits)}: "
            + (", ".join(h.capability.id for h in hits) or "(none)")
            + (f" (writers withheld: {', '.join(withheld)})" if withheld else ""),
            results=found,
        )
        return hits

    @staticmethod
    def _allowed(run: _Run, hits: list[SearchResult]) -> tuple[list[SearchResult], list[str]]:
        if run.change_requested:
            return hits, []
        kept = [h for h in hits if not h.capability.permissions.writes]
        return kept, [h.capability.id for h in hits if h.capability.permissions.writes]

    def _offer(self, run: _Run, cap: Capability) -> None:
        """Make `cap` callable as a tool of its own (its input schema as the parameters)."""
        if cap.id in run.tool_of_cap or len(run.cap_tools) >= MAX_CAPABILITY_TOOLS:
            return
        taken = {t.name for t in TASK_TOOLS} | set(run.cap_tools)
        name = tool_name_for(cap.id, taken)
        schema = dict(cap.input_schema) if cap.input_schema else {}
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        summary = " ".join(cap.summary.split())
        description = f"Run the capability {cap.id}: {preview(summary, 400)}" + (
            " (it changes data)" if cap.permissions.writes else ""
        )
        run.cap_tools[name] = Tool(name, description, schema)
        run.cap_of_tool[name] = cap.id
        run.tool_of_cap[cap.id] = name

    def _resolve_name(self, run: _Run, name: str | None) -> str | None:
        """The tool a name means: a library tool, an offered capability's tool, or its id."""
        if name is None:
            return None
        if name in run.cap_tools or any(t.name == name for t in TASK_TOOLS):
            return name
        return run.tool_of_cap.get(name)

    # -- tools ----------------------------------------------------------------------------------
    async def _call_tool(self, rec: Recorder, run: _Run, name: str, raw: str) -> str:
        started = time.perf_counter()
        run.tool_calls += 1
        resolved = self._resolve_name(run, name)
        ok = False
        try:
            if resolved is None:
                raise ToolError(
                    "unknown_tool",
                    f"there is no tool {name!r}; the tools are "
                    + ", ".join(run.tool_names())
                    + self._not_offered_note(run, name),
                )
            if resolved in run.cap_tools:
                tool = run.cap_tools[resolved]
                args = parse_arguments(tool, raw)
                cap_id = run.cap_of_tool[resolved]
                self._check_repeat(run, resolved, cap_id, args)
                content = self._run(run, cap_id, args)
            else:
                tool = next(t for t in TASK_TOOLS if t.name == resolved)
                args = parse_arguments(tool, raw)
                target = str(args["capability_id"]) if resolved == "run_capability" else resolved
                self._check_repeat(
                    run, resolved, target, args.get("input", args) if target != resolved else args
                )
                content = await self._dispatch(rec, run, tool, args)
            ok = True
        except ToolError as err:
            content = error_result(err)
        except SandboxError as exc:
            content = error_result(ToolError("sandbox_unavailable", str(exc)))
        except (ModelError, _Stop, _Compose):
            raise
        except Exception as exc:  # a bug or an unexpected failure must not end the task
            content = error_result(
                ToolError("tool_failed", f"{name} failed unexpectedly: {type(exc).__name__}: {exc}")
            )
        duration = time.perf_counter() - started
        self._note_result(run, name, raw, content if ok else None)
        rec.step(
            "tool", {"arguments": raw, "result": content}, name=name, ok=ok, duration_s=duration
        )
        rec.emit(
            "tool",
            f"{name}({preview(raw, 100)}) → {preview(_result_line(content), 160)}",
            name=name,
            ok=ok,
            arguments=raw,
            result=content,
            duration_s=duration,
        )
        return content

    def _not_offered_note(self, run: _Run, name: str) -> str:
        """Why a real capability id is not a tool here (a writer for a read-only task)."""
        try:
            cap = self.library.get(name)
        except CapabilityError:
            return ""
        if cap.permissions.writes and not run.change_requested:
            return (
                f". {name!r} changes data, and this task does not ask for a change, so it is "
                "not offered"
            )
        return (
            f". {name!r} is a capability that was not offered for this task: call "
            "run_capability with its id if it fits"
        )

    @staticmethod
    def _note_result(run: _Run, name: str, raw: str, content: str | None) -> None:
        """Remember whether the call succeeded, and a successful capability run's result."""
        try:
            shown = json.loads(content) if content is not None else None
        except ValueError:
            shown = None
        run.last_ok = isinstance(shown, dict) and shown.get("ok") is True
        if run.last_ok and isinstance(shown, dict) and "capability_id" in shown:
            output = json.dumps(shown.get("output"), ensure_ascii=False, default=str)
            run.results.append(
                f"{shown['capability_id']}({preview(raw, 300)}) returned:\n"
                f"{preview(output, COMPOSE_RESULT_CHARS)}"
            )

    def _check_repeat(self, run: _Run, tool: str, target: str, args: Any) -> None:
        """Notice the same call made again and again: warn once, then stop the run.

        A capability called directly and through run_capability with the same input count as
        the same call."""
        signature = target + "\0" + json.dumps(args, sort_keys=True, default=str)
        if signature == run.last_call:
            run.repeats += 1
            if run.last_ok and not run.composed:
                run.composed = True
                raise _Compose(tool)
        else:
            run.last_call, run.repeats = signature, 1
        if run.repeats == REPEAT_LIMIT + 1:
            run.answer_only = True
            raise ToolError(
                "repeated_call",
                f"you called {tool} with the same arguments {run.repeats} times in a row; its "
                "result will not change, so it was not run again. Answer the task now, in plain "
                "text, from the result you already have (no tools are offered for this reply). "
                "Repeating the call once more ends the task",
            )
        if run.repeats > REPEAT_LIMIT + 1:
            raise _Stop(
                "repeated_call",
                f"stopped: the model called {tool} with the same arguments {run.repeats} times "
                "in a row, after being told its result would not change",
            )

    async def _dispatch(self, rec: Recorder, run: _Run, tool: Tool, args: dict[str, Any]) -> str:
        if tool.name == "search_capabilities":
            return self._search(run, str(args["query"]), int(args.get("k", self.k)))
        if tool.name == "run_capability":
            return self._run(run, str(args["capability_id"]), args["input"])
        if tool.name == "create_capability":
            return await self._mutate(rec, run, str(args["task_description"]), None, False)
        if tool.name == "mutate_capability":
            return await self._mutate(
                rec,
                run,
                str(args["task_description"]),
                str(args["parent_id"]),
                bool(args.get("replace_parent", False)),
            )
        raise ToolError("unknown_tool", f"there is no tool {tool.name!r}")

    def _search(self, run: _Run, query: str, k: int) -> str:
        if not query.strip():
            raise ToolError("invalid_arguments", "the query is empty; say what to look for")
        try:
            hits = self.library.search(query, k)
        except CapabilityError as exc:
            raise ToolError("search_failed", str(exc)) from None
        hits, withheld = self._allowed(run, hits)
        for hit in hits:
            self._offer(run, hit.capability)
        extra: dict[str, Any] = {}
        if withheld:
            extra["note"] = (
                f"{len(withheld)} capability(ies) that change data were left out: the task "
                "does not ask for a change"
            )
        return ok_result(capabilities=[_describe(h, run.tool_of_cap) for h in hits], **extra)

    def _run(self, run: _Run, cap_id: str, value: Mapping[str, Any]) -> str:
        try:
            cap = self.library.get(cap_id)
        except CapabilityNotFound as exc:
            raise ToolError(
                "unknown_capability",
                f"{exc}. Use an id from the candidates or from search_capabilities",
            ) from None
        self._check_write(run, cap, value)
        try:
            outcome = self.library.run(cap_id, dict(value))
        except CapabilityDeprecated as exc:
            raise ToolError(
                "deprecated",
                f"capability {exc.capability_id!r} is deprecated ({exc.reason}) and does not "
                "run. Pick another capability, or create one with create_capability",
            ) from None
        except InvalidInput as exc:
            raise ToolError("invalid_input", str(exc), input_schema=cap.input_schema) from None
        run.result.ran.append(cap_id)
        if outcome.ok:
            return ok_result(
                capability_id=cap_id, output=outcome.output, duration_s=outcome.duration_s
            )
        if outcome.blame == "declared":
            message = (
                f"{cap_id} answered with an error it declares for this input (a correct "
                f"answer, not a fault of the capability): {outcome.error}"
            )
        elif outcome.blame == "host":
            message = (
                f"{cap_id} could not reach what it needs (a passing host failure, not counted "
                f"against it): {outcome.error}"
            )
        else:
            message = f"{cap_id} failed ({outcome.error_kind}): {outcome.error}"
        if outcome.deprecated_now:
            message += (
                f". It has now failed {self.library.deprecate_after} times in a row and is "
                "deprecated: it will not be offered again. Use another capability or "
                "create_capability"
            )
        extra: dict[str, Any] = {"deprecated_now": outcome.deprecated_now, "blame": outcome.blame}
        if outcome.traceback:
            extra["traceback"] = outcome.traceback[-1500:]
        raise ToolError("run_failed", message, **extra)

    def _check_write(self, run: _Run, cap: Capability, value: Mapping[str, Any]) -> None:
        """A capability that writes runs only for a task asking for a change, and only after
        the person confirmed when `confirm_writes` is set."""
        if not cap.permissions.writes:
            return
        what = "writes files" if cap.permissions.write_files else "has side effects"
        if not run.change_requested:
            raise ToolError(
                "write_not_allowed",
                f"{cap.id} changes data (it {what}) and this task does not ask for a change, "
                "so it was not run. Use a capability that only reads, or answer with what you "
                "have",
            )
        if self.confirm_writes is not None and not self.confirm_writes(cap, dict(value)):
            raise ToolError(
                "not_confirmed",
                f"the person did not confirm running {cap.id} (it {what}); nothing was "
                "changed. Tell them what you would have changed, or stop",
            )

    async def _mutate(
        self,
        rec: Recorder,
        run: _Run,
        description: str,
        parent_id: str | None,
        replace_parent: bool,
    ) -> str:
        result = run.result
        if not description.strip():
            raise ToolError(
                "invalid_arguments", "task_description is empty; say what the capability must do"
            )
        if parent_id is not None and parent_id not in self.library:
            try:
                self.library.get(parent_id)
            except CapabilityNotFound as exc:
                raise ToolError("unknown_capability", str(exc)) from None
        outcome = await self.mutation.arun(
            description, parent_id, replace_parent=replace_parent, parent_transcript=rec.id
        )
        result.mutation_transcripts.append(outcome.transcript_id)
        if not outcome.ok or outcome.capability is None:
            raise ToolError(
                "creation_failed",
                f"no capability was stored ({outcome.outcome}): {outcome.error}",
                mutation_transcript=outcome.transcript_id,
            )
        cap = outcome.capability
        result.created.append(cap.id)
        if not cap.permissions.writes or run.change_requested:
            self._offer(run, cap)
        tool = run.tool_of_cap.get(cap.id)
        return ok_result(
            capability_id=cap.id,
            summary=cap.summary,
            input_schema=cap.input_schema,
            parents=list(cap.parents),
            note=f"stored; run it with run_capability({cap.id!r}, input)"
            + (f" or call the tool {tool}" if tool else ""),
        )


def tool_name_for(cap_id: str, taken: set[str]) -> str:
    """A tool name for a capability id that fits `^[a-zA-Z0-9_-]{1,64}$` and is not taken."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", cap_id)
    if not _TOOL_NAME.match(name) or name in taken:
        digest = hashlib.sha256(cap_id.encode()).hexdigest()[:8]
        name = f"{name[:50]}_{digest}"
    return name


def _call_dict(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _describe(hit: SearchResult, tools: Mapping[str, str]) -> dict[str, Any]:
    cap = hit.capability
    out = {"id": cap.id, "summary": cap.summary, "input_schema": cap.input_schema}
    if cap.id in tools:
        out["tool"] = tools[cap.id]
    return out


def _listing(hits: list[SearchResult], tools: Mapping[str, str]) -> str:
    if not hits:
        return render("task.no_candidates")
    entries = [
        render(
            "task.candidate",
            id=h.capability.id,
            tool=tools.get(h.capability.id, h.capability.id),
            summary=" ".join(h.capability.summary.split())
            + (" (changes data)" if h.capability.permissions.writes else ""),
            input_schema=json.dumps(h.capability.input_schema, ensure_ascii=False),
        )
        for h in hits
    ]
    return render("task.candidates", listing="\n".join(entries))


def _result_line(content: str) -> str:
    try:
        body = json.loads(content)
    except ValueError:
        return content
    if isinstance(body, dict) and body.get("ok") is False:
        err = body.get("error", {})
        return f"error {err.get('kind')}: {err.get('message')}"
    if isinstance(body, dict):
        for key in ("output", "capability_id", "capabilities"):
            if key in body:
                return json.dumps(body[key], ensure_ascii=False, default=str)
    return content
