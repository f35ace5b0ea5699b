"""Evaluation reports for tests: a typed one as the pipeline completes it, and an old stored row."""

from __future__ import annotations

import json
from typing import Any

from brandvoice.trainer.eval_report import EvalReport
from tests.conftest import TEST_DATA


def make_report(
    recommend: bool = True,
    reasons: tuple[str, ...] = (),
    voice_similarity: float = 0.6123,
) -> EvalReport:
    """A local candidate's report, as ``evaluate`` returns it and the pipeline completes it."""
    report = EvalReport.model_validate(
        {
            "examples": 8,
            "judge": "closer to reference",
            "labels": {
                "candidate": "candidate",
                "production": "v1",
                "baseline": "base + 5 examples",
            },
            "voice_similarity": {
                "candidate": voice_similarity,
                "production": 0.42,
                "baseline": 0.36,
            },
            "win_rate": {"vs_production": 0.75, "vs_baseline": 0.875},
            "samples": [
                {
                    "prompt": f"Question {i}?",
                    "reference": f"Reference {i}",
                    "production": f"Old answer {i}",
                    "candidate": f"New answer {i}. Cheers, Acme",
                }
                for i in range(4)
            ],
            "val_loss": {"candidate": 1.104, "production": 1.302},
            "forgetting": 1.07,
            "verdict": {"recommend_promote": recommend, "reasons": list(reasons)},
        }
    )
    return report.with_run(
        training={
            "status": "completed",
            "steps": 12,
            "best_step": 10,
            "best_eval_loss": 1.1,
            "trained_tokens": 20480,
            "seconds": 42.0,
            "evals": [
                {"step": 5, "eval_loss": 1.3, "train_loss": 1.5},
                {"step": 10, "eval_loss": 1.1, "train_loss": 1.2},
            ],
        },
        snapshot={
            "id": 3,
            "hash": "ab12cd34ef56" + "0" * 52,
            "train": 120,
            "val": 6,
            "by_source": {"import": 30, "correction": 6, "synthetic": 90},
            "real_train": 30,
            "synthetic_train": 90,
        },
        generated={"kept": 90},
    )


def old_stored_report() -> dict[str, Any]:
    """A report exactly as the code before ``EvalReport`` stored it (no schema version): captured
    from that code's hosted pipeline test (OpenAI through the fake server, tests/hosted)."""
    return json.loads((TEST_DATA / "eval_report_v1_hosted.json").read_text(encoding="utf-8"))
