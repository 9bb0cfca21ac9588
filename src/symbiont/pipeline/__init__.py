"""The candidate pipeline: from a model's reply text to a code object ready to swap in.

```
reply ─► extract ─► parse ─► signature ─► policy ─► typecheck ─► compile ─► Candidate
```

(A native evolvable's candidate also passes the `native` stage after `compile`: Numba
compiles it in a trial child first; see `symbiont.native`.)

`run_pipeline(reply, target, config)` runs every stage and never raises on any input text:
each failure is a `Diagnostic` (stage, kind, message for the model, line, column, caret
excerpt) in a `PipelineResult`. The stages are also usable one by one; their conventions:

- `extract_code`, `parse_source`, `check_signature`, `compile_candidate` return their
  product or raise `symbiont.errors.StageError` carrying the diagnostics;
- `check_policy`, `check_module_level` and `typecheck` return a list of diagnostics (empty:
  passed).

Promotion only binds names: the policy stage refuses a module level that does more than
define things (`check_module_level`, kind `policy/module_level`), and the compile stage binds
every module-level name of a candidate under a per-revision name (`namespaced`), so a swap
never changes what a running older revision sees.

Two repairs for small models happen on the way, and never add code: a head copied with its
whitespace changed is put back as given (`parse.restore_head`, `parse.reindent_docstring`),
and a demonstration appended after the function (`print(f(0))`, `assert f(...) == ...`,
example data) is cut before the policy stage (`usage.drop_trailing_usage`), and a
`from typing import *` becomes an import of the names used and an import nothing uses goes (`import_repairs`); the result's
`notes` say what changed.

The policy stage is a guardrail for the model, not a security boundary (see `policy`).
"""

from __future__ import annotations
import __future__

import ast
import contextlib
import functools
import textwrap
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

from symbiont.diagnostics import Diagnostic
from symbiont.errors import StageError
from symbiont.pipeline._target import Target
from symbiont.pipeline._util import walk
from symbiont.pipeline.compile import (
    Candidate,
    compile_candidate,
    namespaced,
    original_names,
    parse_quietly,
)
from symbiont.pipeline.extract import extract_code
from symbiont.pipeline.import_repairs import drop_unused_imports, resolve_star_imports
from symbiont.pipeline.imports import missing_imports, own_module_imports
from symbiont.pipeline.parse import (
    assemble_body,
    is_body_only,
    layout_repairs,
    parse_and_compile,
    parse_source,
)
from symbiont.pipeline.policy import (
    DEFAULT_POLICY,
    SAFE_DECORATORS,
    Policy,
    check_module_level,
    check_policy,
)
from symbiont.pipeline.signature import (
    check_signature,
    normalise_annotation,
    restore_annotations,
    typing_aliases_in,
)
from symbiont.pipeline.typecheck import typecheck
from symbiont.pipeline.usage import drop_trailing_usage
from symbiont.signature import head_of

__all__ = [
    "DEFAULT_POLICY",
    "SAFE_DECORATORS",
    "STAGES",
    "Candidate",
    "Extracted",
    "PipelineConfig",
    "PipelineResult",
    "Policy",
    "Target",
    "check_module_level",
    "check_policy",
    "check_signature",
    "compile_candidate",
    "extract_and_parse",
    "extract_code",
    "namespaced",
    "normalise_annotation",
    "original_names",
    "parse_source",
    "run_pipeline",
    "typecheck",
]

STAGES = ("extract", "parse", "signature", "policy", "typecheck", "compile")


@dataclass(frozen=True)
class PipelineConfig:
    """`typecheck` switches the type check off; `typechecker` is "auto" (ty, else mypy),
    "ty" (server, falling back to `ty check`), "ty-cli" or "mypy". `module_level` checks that
    the module level only defines names (off for capabilities: their module runs afresh in a
    sandbox on each call, never inside a live module)."""

    typecheck: bool = True
    policy: Policy = DEFAULT_POLICY
    typechecker: str = "auto"
    module_level: bool = True


@dataclass
class PipelineResult:
    candidate: Candidate | None
    diagnostics: list[Diagnostic]
    stage: str  # the stage that failed, or "compile" when all passed
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, and "total"
    notes: list[str] = field(default_factory=list)  # what the pipeline changed in the reply
    # the code the stages judged, after the repairs ("" when it never parsed): two replies
    # that differ only in what the repairs fix are one function (repeat detection)
    source: str = ""

    @property
    def ok(self) -> bool:
        return self.candidate is not None


@dataclass(frozen=True, slots=True)
class Extracted:
    """A reply's code, read before the pipeline runs (the search's duplicate check reads it
    first): `source` as `extract_code` returns it, and `tree`, `ast.parse(source,
    "<candidate>")` (None when it does not parse). Handed to `run_pipeline` (`extracted=`),
    the pipeline starts from these instead of extracting and parsing the reply again: the
    tree must be left as parsed (reading it, `ast.dump` say, is fine). The policy stage and
    the compile stage both work on that one tree, so what is judged is what is compiled; a
    repair that changes the source parses the repaired text anew."""

    source: str
    tree: ast.Module | None


def extract_and_parse(reply: str, target: Target) -> Extracted | None:
    """The code of `reply` and its tree, as `run_pipeline` would find them; None when the
    reply holds no code (or upsets the extractor): the pipeline's extract stage then says
    so properly."""
    try:
        source = _extract(reply, target)
    except Exception:  # StageError (no code), or a reply odd enough to upset the extractor
        return None
    return Extracted(source, parse_quietly(source))


def _extract(reply: str, target: Target) -> str:
    return extract_code(
        reply if isinstance(reply, str) else str(reply),
        target.signature.name,
        def_line=target.signature.render(with_docstring=False),
    )


def _heads(target: Target) -> list[str]:
    """The heads a prompt may have shown: the declared function's, verbatim from its file,
    and the declared signature rendered with its docstring."""
    heads = []
    if target.module_source is not None and target.function_span is not None:
        first, last = target.function_span
        text = "".join(target.module_source.splitlines(keepends=True)[first - 1 : last])
        head = head_of(textwrap.dedent(text), target.signature.name)
        if head:
            heads.append(head)
    heads.append(target.signature.render())
    return heads


def _own_names(target: Target) -> set[str]:
    """The names the target's module goes by: its `__name__` (not `__main__`) and its file's
    stem (a script is `__main__` when run, and the model sees its file's name)."""
    return set(_names_of(str(target.globals.get("__name__", "")), target.module_path))


@functools.lru_cache(maxsize=64)
def _names_of(name: str, module_path: str | None) -> frozenset[str]:
    names = {name} - {"", "__main__"}
    if module_path is not None:
        names.add(Path(module_path).stem)
    return frozenset({n.split(".")[-1] for n in names} | names)


def _spans(numbers: list[int]) -> str:
    """`[3, 4, 5, 9]` as "3-5, 9"."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)


def run_pipeline(
    reply: str,
    target: Target,
    config: PipelineConfig = PipelineConfig(),
    *,
    extracted: Extracted | None = None,
) -> PipelineResult:
    """Run every stage on a model's reply. Never raises on any input text.

    `extracted`: what `extract_and_parse(reply, target)` returned, when the caller has it
    (the reply is then neither extracted nor parsed again; see `Extracted`)."""
    timings: dict[str, float] = {}
    notes: list[str] = []
    started = time.perf_counter()
    stage = "extract"
    result: PipelineResult
    judged = ""  # the source once it parses, as repaired
    walked: tuple[ast.Module | None, list[ast.AST]] = (None, [])
    compiled: tuple[ast.Module | None, types.CodeType | None] = (None, None)

    def nodes_of(tree: ast.Module) -> list[ast.AST]:
        """Every node of `tree`, walked once for all the stages that read them (a repair
        parses its new source into a new tree, which is walked anew)."""
        nonlocal walked
        if walked[0] is not tree:
            walked = (tree, walk(tree))
        return walked[1]

    def done(candidate: Candidate | None, diagnostics: list[Diagnostic], at: str) -> PipelineResult:
        timings["total"] = time.perf_counter() - started
        return PipelineResult(candidate, diagnostics, at, timings, notes, judged)

    try:
        t = time.perf_counter()
        stage = "extract"
        try:
            source = extracted.source if extracted is not None else _extract(reply, target)
        finally:
            timings["extract"] = time.perf_counter() - t

        t = time.perf_counter()
        stage = "parse"
        try:
            # a body without its `def`: the declared head is put over it
            # (checked first: the heads are read from the module's source, and most replies
            # define the function)
            assembled = (
                assemble_body(source, target.signature.name, _heads(target)[0])
                if is_body_only(source)
                else None
            )
            if assembled is not None:
                with contextlib.suppress(StageError):
                    parse_source(assembled)
                    source = assembled
                    notes.append("the reply was a body only: the declared head was put over it")
            # the caller's tree, when it was parsed from this very text (not from a body
            # the declared head was put over)
            given = extracted.tree if extracted is not None and source is extracted.source else None
            try:
                tree, module_code = parse_and_compile(source, tree=given)
                compiled = (tree, module_code)  # the trial compile's code, of this tree
            except StageError as original:
                # A head copied with its whitespace changed: put the given head back; a
                # docstring of its own indented unlike the body: indent it like the body;
                # a tail after the function that is not Python (tests): cut it.
                # When none helps, the model is told about its own text, as it was.
                tree = None
                for repaired in layout_repairs(source, target.signature.name, _heads(target)):
                    with contextlib.suppress(StageError):
                        tree = parse_source(repaired)
                        source = repaired
                        notes.append("the layout of the reply was repaired (head, docstring, tail)")
                        break
                if tree is None:
                    raise original from None
        finally:
            timings["parse"] = time.perf_counter() - t

        if config.module_level:
            # `from typing import *`: the names the candidate uses from it, imported by name
            starred = resolve_star_imports(tree, source, target.globals, nodes=nodes_of(tree))
            if starred is not None:
                with contextlib.suppress(StageError):
                    tree, source = parse_source(starred[0]), starred[0]
                    notes.extend(starred[1])
            # a demonstration after the function is not the answer
            dropped = drop_trailing_usage(
                tree, source, target.signature.name, target.globals, target.owned_names
            )
            if dropped is not None:
                with contextlib.suppress(StageError):
                    tree, source = parse_source(dropped[0]), dropped[0]
                    notes.append(
                        "removed the example usage after the function (lines "
                        + _spans(dropped[1])
                        + ")"
                    )
            # an import nothing uses (`import sys` out of habit) must not sink the function
            unused = drop_unused_imports(tree, source, nodes=nodes_of(tree))
            if unused is not None:
                with contextlib.suppress(StageError):
                    tree, source = parse_source(unused[0]), unused[0]
                    notes.extend(unused[1])

        judged = source
        t = time.perf_counter()
        stage = "signature"
        aliases = typing_aliases_in(target.globals)
        try:
            try:
                node = check_signature(tree, target.signature, source, typing_aliases=aliases)
            except StageError as original:
                # a `def` line that only leaves out annotations: the declared one is put back
                fixed = restore_annotations(tree, source, target.signature, aliases)
                if fixed is None:
                    raise
                try:
                    fixed_tree = parse_source(fixed)
                    node = check_signature(
                        fixed_tree, target.signature, fixed, typing_aliases=aliases
                    )
                except StageError:
                    raise original from None
                tree, source = fixed_tree, fixed
                judged = source
                notes.append("the def line left out annotations: the declared one was put back")
        finally:
            timings["signature"] = time.perf_counter() - t

        t = time.perf_counter()
        stage = "policy"
        nodes = nodes_of(tree)  # the tree that is compiled below, as it is compiled
        problems = check_policy(
            tree, config.policy, source, module_globals=target.globals, nodes=nodes
        )
        if config.module_level:
            problems += check_module_level(
                tree,
                source,
                module_globals=target.globals,
                target_name=target.signature.name,
                lazy_annotations=bool(
                    target.declared_code.co_flags & __future__.annotations.compiler_flag
                ),
            )
        if not problems:  # an import of a module that is not installed fails before any trial
            problems = missing_imports(tree, source, policy=config.policy, nodes=nodes)
            if config.module_level:
                problems += own_module_imports(tree, source, _own_names(target), nodes=nodes)
        problems.sort(key=lambda d: (d.line or 0, d.col or 0))
        timings["policy"] = time.perf_counter() - t
        if problems:
            return done(None, problems, stage)

        if config.typecheck:
            t = time.perf_counter()
            stage = "typecheck"
            problems = typecheck(source, target, config.typechecker)
            timings["typecheck"] = time.perf_counter() - t
            if problems:
                return done(None, problems, stage)

        t = time.perf_counter()
        stage = "compile"
        try:
            candidate = compile_candidate(
                tree,
                node,
                source,
                target,
                module_code=compiled[1] if compiled[0] is tree else None,
                nodes=nodes,
            )
        finally:
            timings["compile"] = time.perf_counter() - t
        # A native evolvable's candidate: Numba compiles it in a trial child first (None for
        # every other target; symbiont.native imports Numba only for native ones).
        from symbiont.native import run_native_stage

        native = run_native_stage(candidate, target)
        if native is not None:
            stage = "native"
            native_candidate, problems, native_timings = native
            timings.update(native_timings)
            if native_candidate is None:
                return done(None, problems, stage)
            candidate = native_candidate
        result = done(candidate, [], "compile")
    except StageError as exc:
        result = done(None, list(exc.diagnostics), stage)
    except Exception as exc:
        result = done(
            None,
            [
                Diagnostic(
                    stage,
                    "internal",
                    f"the {stage} stage failed unexpectedly ({type(exc).__name__}: {exc}); "
                    "send the function again, written plainly",
                )
            ],
            stage,
        )
    return result
