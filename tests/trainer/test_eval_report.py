"""The evaluation report in the store: it round-trips, old rows load, bad rows say what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from brandvoice.store.db import session_scope
from brandvoice.trainer.eval_report import (
    SCHEMA_VERSION,
    EvalReport,
    StoredReportError,
    report_of,
)
from brandvoice.trainer.registry import get_version, register_candidate
from tests.eval_reports import make_report, old_stored_report


def stored_and_read_back(engine, stored: dict) -> EvalReport | None:  # type: ignore[no-untyped-def, type-arg]
    with session_scope(engine) as session:
        name = register_candidate(session, base_model="base", eval=stored).name
    with session_scope(engine) as session:
        return report_of(get_version(session, name))


def test_the_report_round_trips_through_the_store(engine):
    report = make_report(recommend=False, reasons=("voice similarity fell",))

    loaded = stored_and_read_back(engine, report.to_stored())

    assert loaded == report
    assert loaded.schema_version == SCHEMA_VERSION
    assert loaded.training.evals[1].eval_loss == 1.1
    assert loaded.snapshot.real_examples == 36 and loaded.snapshot.synthetic_examples == 90
    assert loaded.verdict.reason == "voice similarity fell"


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def test_a_report_stored_by_the_old_code_loads(engine):
    old = old_stored_report()
    assert "schema_version" not in old

    loaded = stored_and_read_back(engine, old)

    assert loaded is not None and loaded.schema_version == SCHEMA_VERSION
    assert loaded.voice_similarity.candidate == old["voice_similarity"]["candidate"]
    assert loaded.win_rate.vs_production == old["win_rate"]["vs_production"]
    assert loaded.labels.production == old["labels"]["production"]
    assert loaded.val_loss is None and loaded.forgetting is None  # a hosted candidate
    assert loaded.verdict.recommend_promote is old["verdict"]["recommend_promote"]
    assert loaded.verdict.reasons == old["verdict"]["reasons"]
    assert [s.reference for s in loaded.samples] == [s["reference"] for s in old["samples"]]
    assert loaded.training.steps == old["training"]["steps"]
    assert loaded.training.model_id == old["training"]["model_id"]
    assert [p.step for p in loaded.training.evals] == [e["step"] for e in old["training"]["evals"]]
    assert loaded.snapshot.hash == old["snapshot"]["hash"]
    assert loaded.report_path == old["report_path"]
    assert loaded.not_measured == []
    # Written back, it keeps everything the old row held (the hosted job's estimate included).
    expected = {**old, "schema_version": SCHEMA_VERSION, "not_measured": []}
    assert loaded.to_stored() == without_nulls(expected)


def test_a_version_without_a_report_has_none(engine):
    assert stored_and_read_back(engine, {}) is None


def test_unreadable_rows_name_the_version_and_the_problem(engine):
    broken = make_report().to_stored()
    del broken["win_rate"]["vs_production"]
    with pytest.raises(
        StoredReportError, match=r"report of v1 .*win_rate\.vs_production: Field required"
    ):
        stored_and_read_back(engine, broken)

    newer = {**make_report().to_stored(), "schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(StoredReportError, match=r"newer than this brandvoice reads"):
        EvalReport.from_stored(newer)
