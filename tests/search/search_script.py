"""A search in its own process (killed and resumed by test_search_resume.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import search_targets as t

import symbiont
from symbiont.models.mutation import MutationModel
from symbiont.search import Budget, SearchReport


def main() -> None:
    store, evaluations, resume, seed = (
        sys.argv[1],
        int(sys.argv[2]),
        sys.argv[3] == "1",
        int(sys.argv[4]),
    )
    runtime = symbiont.Runtime(store=store)

    def progress(report: SearchReport) -> None:  # what this process holds, committed or not
        print(json.dumps({"candidates": report.candidates}), flush=True)

    report = runtime.search_sync(
        t.peak, MutationModel(seed=seed), metric=t.score_peak_slowly,
        budget=Budget(evaluations=evaluations), resume=resume, parallel=2,
        migration_interval=4, on_progress=progress if os.environ.get("SEARCH_PROGRESS") else None,
    )  # fmt: skip
    print(
        json.dumps(
            {
                "search_id": report.search_id,
                "resumed": report.resumed,
                "evaluations": report.evaluations,
                "best": report.best_score,
                "best_number": report.best.number if report.best else None,
                "active": t.peak.symbiont.active.number,
                "stop": report.stop_reason,
            }
        )
    )


if __name__ == "__main__":
    main()
