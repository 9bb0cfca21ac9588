"""Run OpenEvolve 0.4.0 on the instant loopback server (run by bench_search.py in OpenEvolve's
own virtual environment; prints one JSON line: wall and CPU seconds of a small and a large
run). Full-rewrite mode, one worker, a trivial evaluator, no cascade, like symbiont's
harness row."""

from __future__ import annotations

import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

from openevolve import run_evolution
from openevolve.config import Config, LLMModelConfig

PROGRAM = "def bump(x):\n    return x\n"
EVALUATOR = """
import importlib.util


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"combined_score": float(module.bump(0))}
"""


def _tree_cpu() -> float:
    """CPU seconds of this process and of its reaped children (the pool's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(base_url: str, iterations: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process and its pool) of one run."""
    config = Config()
    config.llm.models = [
        LLMModelConfig(name="fake-model", api_base=base_url, api_key="k", weight=1.0)
    ]
    config.llm.update_model_params({"api_base": base_url, "api_key": "k"})
    config.diff_based_evolution = False
    config.evaluator.parallel_evaluations = 1
    config.evaluator.cascade_evaluation = False
    config.checkpoint_interval = 10**6
    config.log_level = "ERROR"
    with tempfile.TemporaryDirectory() as tmp:
        evaluator = Path(tmp) / "evaluator.py"
        evaluator.write_text(EVALUATOR)
        cpu = _tree_cpu()
        started = time.perf_counter()
        run_evolution(
            PROGRAM,
            str(evaluator),
            config=config,
            iterations=iterations,
            output_dir=tmp,
            cleanup=False,
        )
        return time.perf_counter() - started, _tree_cpu() - cpu


def main() -> None:
    logging.disable(logging.CRITICAL)
    base_url, small, large = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    t_small, c_small = run(base_url, small)
    t_large, c_large = run(base_url, large)
    print(json.dumps({"small": [small, t_small, c_small], "large": [large, t_large, c_large]}))


if __name__ == "__main__":
    main()
