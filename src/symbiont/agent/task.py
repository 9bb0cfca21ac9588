"""The task agent: a task in words → the few capabilities that fit → run one → an answer.

    agent = Agent(library, model)              # k=5 candidates, at most 12 model calls
    result = agent.run("What is employee E042's salary?")
    result.answer, result.outcome, result.transcript_id

The model sees only the top-k capabilities for the task (hybrid search; deprecated ones are
excluded before the top k is taken), with their ids, summaries and input schemas, and works
through tools: `search_capabilities`, `run_capability` (in the sandbox; outcome recorded, so
a capability failing again and again is deprecated), `create_capability` and
`mutate_capability` (handed to the `MutationAgent`). A malformed call — bad JSON, an unknown
tool or id, arguments that break the schema — is answered with a tool error the model can
act on; it never ends the run. The run ends on a plain-text answer, a model error, or the
step limit, and every step is kept as a transcript.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from symbiont.agent._recorder import EventHandler, Recorder, preview
from symbiont.agent.mutation import MutationAgent
from symbiont.agent.prompts import render
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
    CapabilityDeprecated,
    CapabilityNotFound,
    InvalidInput,
    Library,
    SearchResult,
)
from symbiont.models.base import Message, Model

__all__ = ["OUTCOMES", "Agent", "AgentResult"]

OUTCOMES = ("answered", "step_limit", "error")


@dataclass(slots=True)
class AgentResult:
    """How a task ended. `outcome`: answered, step_limit or error (then `error` says why)."""

    task: str
    answer: str | None
    outcome: str
    steps: int  # model calls made by the task agent (mutation runs have their own)
    transcript_id: int
    error: str | None = None
    offered: list[str] = field(default_factory=list)  # ids in the first prompt
    ran: list[str] = field(default_factory=list)  # ids run (successfully or not)
    created: list[str] = field(default_factory=list)  # ids stored by mutation runs
    mutation_transcripts: list[int] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome == "answered"


class Agent:
    """Solves tasks with the capabilities of `library`, asking `model` what to do.

    `mutation_model` (default: `model`) writes new capabilities; `mutation_max_steps` caps
    each mutation run. `on_event` receives every step as it happens (the CLI prints them).
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
        self.transcripts = transcripts or TranscriptStore(library.path)
        self.on_event = on_event
        self.max_retries = max_retries
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
        rec = Recorder(
            self.transcripts,
            agent="task",
            task=task,
            model=self.model,
            parent_id=None,
            config={"k": self.k, "max_steps": self.max_steps, "tier": self.library.tier},
            on_event=self.on_event,
        )
        result = AgentResult(task, None, "error", 0, rec.id)
        messages: list[Message] = []
        try:
            hits = self._retrieve(task, rec)
            result.offered = [h.capability.id for h in hits]
            messages = [
                {"role": "system", "content": render("task.system")},
                {
                    "role": "user",
                    "content": render("task.user", task=task, candidates=_listing(hits)),
                },
            ]
            specs = tool_specs(TASK_TOOLS)
            while rec.model_calls < self.max_steps:
                reply = await rec.ask(self.model, messages, specs, max_retries=self.max_retries)
                messages.append(assistant_message(reply))
                if not reply.tool_calls:
                    if reply.text.strip():
                        result.answer = reply.text.strip()
                        result.outcome = "answered"
                        break
                    messages.append({"role": "user", "content": render("task.empty_reply")})
                    rec.step("note", {"note": "empty reply; asked again"})
                    continue
                for call in reply.tool_calls:
                    content = await self._call_tool(rec, result, call.name, call.arguments)
                    messages.append(tool_message(call.id, content))
            else:
                result.outcome = "step_limit"
                result.error = (
                    f"stopped at the step limit ({self.max_steps} model calls) without an answer"
                )
        except ModelError as exc:
            result.outcome, result.error = "error", f"model error: {exc}"
        except BaseException as exc:
            self._finish(rec, result, messages, f"interrupted: {type(exc).__name__}: {exc}")
            raise
        self._finish(rec, result, messages)
        return result

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
        else:
            rec.emit(result.outcome, result.error or result.outcome, ok=False)

    # -- retrieval ------------------------------------------------------------------------------
    def _retrieve(self, task: str, rec: Recorder) -> list[SearchResult]:
        started = time.perf_counter()
        try:
            hits = self.library.search(task, self.k)
            error = None
        except CapabilityError as exc:  # e.g. an empty library without an index yet
            hits, error = [], str(exc)
        duration = time.perf_counter() - started
        found = [{"id": h.capability.id, "score": round(h.score, 6), "why": h.why} for h in hits]
        rec.step(
            "retrieve",
            {"query": task, "k": self.k, "results": found, "error": error},
            duration_s=duration,
        )
        rec.emit(
            "retrieve",
            f"retrieved {len(hits)}: " + (", ".join(h.capability.id for h in hits) or "(none)"),
            results=found,
        )
        return hits

    # -- tools ----------------------------------------------------------------------------------
    async def _call_tool(self, rec: Recorder, result: AgentResult, name: str, raw: str) -> str:
        started = time.perf_counter()
        tool = next((t for t in TASK_TOOLS if t.name == name), None)
        ok = False
        try:
            if tool is None:
                raise ToolError(
                    "unknown_tool",
                    f"there is no tool {name!r}; the tools are "
                    + ", ".join(t.name for t in TASK_TOOLS),
                )
            args = parse_arguments(tool, raw)
            content = await self._dispatch(rec, result, tool, args)
            ok = True
        except ToolError as err:
            content = error_result(err)
        except SandboxError as exc:
            content = error_result(ToolError("sandbox_unavailable", str(exc)))
        except ModelError:
            raise
        except Exception as exc:  # a bug or an unexpected failure must not end the task
            content = error_result(
                ToolError("tool_failed", f"{name} failed unexpectedly: {type(exc).__name__}: {exc}")
            )
        duration = time.perf_counter() - started
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

    async def _dispatch(
        self, rec: Recorder, result: AgentResult, tool: Tool, args: dict[str, Any]
    ) -> str:
        if tool.name == "search_capabilities":
            return self._search(str(args["query"]), int(args.get("k", self.k)))
        if tool.name == "run_capability":
            return self._run(result, str(args["capability_id"]), args["input"])
        if tool.name == "create_capability":
            return await self._mutate(rec, result, str(args["task_description"]), None, False)
        if tool.name == "mutate_capability":
            return await self._mutate(
                rec,
                result,
                str(args["task_description"]),
                str(args["parent_id"]),
                bool(args.get("replace_parent", False)),
            )
        raise ToolError("unknown_tool", f"there is no tool {tool.name!r}")

    def _search(self, query: str, k: int) -> str:
        if not query.strip():
            raise ToolError("invalid_arguments", "the query is empty; say what to look for")
        try:
            hits = self.library.search(query, k)
        except CapabilityError as exc:
            raise ToolError("search_failed", str(exc)) from None
        return ok_result(capabilities=[_describe(h) for h in hits])

    def _run(self, result: AgentResult, cap_id: str, value: Mapping[str, Any]) -> str:
        try:
            cap = self.library.get(cap_id)
        except CapabilityNotFound as exc:
            raise ToolError(
                "unknown_capability",
                f"{exc}. Use an id from the candidates or from search_capabilities",
            ) from None
        try:
            run = self.library.run(cap_id, dict(value))
        except CapabilityDeprecated as exc:
            raise ToolError(
                "deprecated",
                f"{exc}. Pick another capability, or create one with create_capability",
            ) from None
        except InvalidInput as exc:
            raise ToolError("invalid_input", str(exc), input_schema=cap.input_schema) from None
        result.ran.append(cap_id)
        if run.ok:
            return ok_result(capability_id=cap_id, output=run.output, duration_s=run.duration_s)
        message = f"{cap_id} failed ({run.error_kind}): {run.error}"
        if run.deprecated_now:
            message += (
                f". It has now failed {self.library.deprecate_after} times in a row and is "
                "deprecated: it will not be offered again. Use another capability or "
                "create_capability"
            )
        extra: dict[str, Any] = {"deprecated_now": run.deprecated_now}
        if run.traceback:
            extra["traceback"] = run.traceback[-1500:]
        raise ToolError("run_failed", message, **extra)

    async def _mutate(
        self,
        rec: Recorder,
        result: AgentResult,
        description: str,
        parent_id: str | None,
        replace_parent: bool,
    ) -> str:
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
        return ok_result(
            capability_id=cap.id,
            summary=cap.summary,
            input_schema=cap.input_schema,
            parents=list(cap.parents),
            note=f"stored; run it with run_capability({cap.id!r}, input)",
        )


def _describe(hit: SearchResult) -> dict[str, Any]:
    cap = hit.capability
    return {"id": cap.id, "summary": cap.summary, "input_schema": cap.input_schema}


def _listing(hits: list[SearchResult]) -> str:
    if not hits:
        return render("task.no_candidates")
    entries = [
        render(
            "task.candidate",
            id=h.capability.id,
            summary=" ".join(h.capability.summary.split()),
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
