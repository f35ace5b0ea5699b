"""``/brandvoice`` through the real endpoint, answered on the response URL."""

from __future__ import annotations

import pytest
from sqlmodel import select

from brandvoice.bot.slack.commands import Command, parse_command
from brandvoice.store.db import session_scope
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.kv import get_setting
from brandvoice.store.models import (
    AuditLog,
    ExampleSource,
    ExampleStatus,
    RunStatus,
    TrainingRun,
    VersionStatus,
)
from brandvoice.trainer.registry import get_version, promote_version, register_candidate
from tests.eval_reports import make_report
from tests.slack.conftest import ALICE, CURATOR, GROUP_MEMBER

pytestmark = pytest.mark.anyio


async def run(slack, text: str, user: str = CURATOR) -> dict:
    response = await slack.command(text, user=user)
    assert response.status_code == 200
    return slack.responses()[-1]


def runs(engine) -> list[TrainingRun]:
    with session_scope(engine) as session:
        return list(session.exec(select(TrainingRun).order_by(TrainingRun.id)))


def audit_actions(engine) -> list[tuple[str, str]]:
    with session_scope(engine) as session:
        return [(a.actor, a.action) for a in session.exec(select(AuditLog).order_by(AuditLog.id))]


def test_parsing_subcommands():
    assert parse_command("") == Command("help")
    assert parse_command("  PROMOTE v3 ") == Command("promote", "v3")
    assert parse_command("schedule 0 9 * * mon") == Command("schedule", "0 9 * * mon")
    assert parse_command("promote") == Command("help", unknown="promote")
    assert parse_command("make coffee") == Command("help", unknown="make coffee")


async def test_help_and_unknown_input_answer_only_the_asker(slack):
    answer = await run(slack, "", user=ALICE)
    assert answer["response_type"] == "ephemeral"
    assert "/brandvoice promote VERSION" in answer["text"]
    answer = await run(slack, "dance", user=ALICE)
    assert answer["text"].startswith("I don't know `dance`.")
    assert "/brandvoice status" in answer["text"]


async def test_status_shows_production_dataset_last_and_next_run(slack, engine, count_tokens):
    with session_scope(engine) as session:
        register_candidate(session, base_model="base", eval=make_report().to_stored())
        promote_version(session, "v1", CURATOR)
        add_examples(
            session,
            [
                NewExample([{"role": "user", "content": f"q{i}"}], ExampleSource.IMPORT)
                for i in range(3)
            ]
            + [
                NewExample(
                    [{"role": "user", "content": "p"}],
                    ExampleSource.CORRECTION,
                    ExampleStatus.PENDING,
                )
            ],
            count_tokens,
        )
        session.add(TrainingRun(status=RunStatus.SUCCEEDED))
    answer = await run(slack, "status", user=ALICE)
    assert answer["response_type"] == "ephemeral"
    text = answer["text"]
    assert f"*In production:* v1, promoted by <@{CURATOR}>" in text
    assert "voice similarity 0.612 · win rate vs production 0.75" in text
    assert "3 approved (3 import), 1 pending review" in text
    assert "*Last run:* #1 succeeded" in text
    assert "`0 9 * * mon`, UTC" in text


async def test_curator_only_commands_are_refused_to_others_and_the_refusals_audited(slack, engine):
    for text in ("train", "promote v1", "rollback", "discard v1", "schedule off", "generate 2"):
        answer = await run(slack, text, user=ALICE)
        assert answer["response_type"] == "ephemeral"
        assert answer["text"].startswith("Only curators can use"), text
    assert runs(engine) == []
    assert audit_actions(engine) == [
        (ALICE, "run.enqueue.refused"),
        (ALICE, "model.promote.refused"),
        (ALICE, "model.rollback.refused"),
        (ALICE, "model.discard.refused"),
        (ALICE, "setting.set.refused"),
        (ALICE, "run.enqueue.refused"),
    ]
    with session_scope(engine) as session:
        promote = session.exec(
            select(AuditLog).where(AuditLog.action == "model.promote.refused")
        ).one()
    assert (promote.target, promote.details) == ("v1", {"reason": "not a curator"})


async def test_train_enqueues_a_run_once_and_announces_it(slack, engine):
    answer = await run(slack, "train")
    assert answer["response_type"] == "in_channel"
    [queued] = runs(engine)
    assert (queued.status, queued.requested_by, queued.force) == ("queued", CURATOR, False)
    assert f"queued retrain run #{queued.id}" in answer["text"]
    assert (CURATOR, "run.enqueue") in audit_actions(engine)

    again = await run(slack, "train force")
    assert again["response_type"] == "ephemeral"
    assert "already queued" in again["text"]
    assert len(runs(engine)) == 1


async def test_generate_enqueues_a_generation_run(slack, engine):
    answer = await run(slack, "generate 4", user=GROUP_MEMBER)
    [queued] = runs(engine)
    assert (queued.kind, queued.config) == ("generate", {"per_example": 4})
    assert answer["response_type"] == "in_channel"
    assert "Cannot generate" in (await run(slack, "generate 99"))["text"]
    busy = await run(slack, "generate 2")
    assert (
        busy["text"] == f"Cannot generate: run #{queued.id} is already queued; wait for its report"
    )
    assert len(runs(engine)) == 1


async def test_a_refused_promotion_is_audited_with_its_reason(slack, engine):
    answer = await run(slack, "promote v9")
    assert "Cannot promote: no model version 'v9'" in answer["text"]
    with session_scope(engine) as session:
        refusal = session.exec(select(AuditLog)).one()
    assert (refusal.actor, refusal.action, refusal.target) == (
        CURATOR,
        "model.promote.refused",
        "v9",
    )
    assert "no model version 'v9'" in refusal.details["reason"]


async def test_promote_rollback_and_discard_go_through_the_registry(slack, engine):
    with session_scope(engine) as session:
        for _ in range(3):
            register_candidate(session, base_model="base")
    answer = await run(slack, "promote v1")
    assert answer["response_type"] == "in_channel" and "promoted *v1*" in answer["text"]
    await run(slack, "promote v2")
    assert "already in production" in (await run(slack, "promote v2"))["text"]
    answer = await run(slack, "rollback")
    assert "rolled back *v2*; v1 answers again" in answer["text"]
    answer = await run(slack, "discard v3")
    assert answer["response_type"] == "in_channel"
    answer = await run(slack, "promote v3")
    assert answer["response_type"] == "ephemeral"
    assert "Cannot promote: v3 was discarded" in answer["text"]
    assert "Cannot promote: no model version 'v9'" in (await run(slack, "promote v9"))["text"]
    with session_scope(engine) as session:
        assert get_version(session, "v1").status == VersionStatus.PROMOTED
        assert get_version(session, "v3").status == VersionStatus.DISCARDED
    actions = [action for _, action in audit_actions(engine)]
    assert actions.count("model.promote") == 2 and "model.rollback" in actions


async def test_schedule_shows_changes_and_turns_off_the_retrain_cron(slack, engine):
    assert "`0 9 * * mon`" in (await run(slack, "schedule", user=ALICE))["text"]
    answer = await run(slack, "schedule 30 6 * * 1-5")
    assert answer["response_type"] == "in_channel" and "`30 6 * * 1-5`" in answer["text"]
    bad = await run(slack, "schedule every monday")
    assert bad["response_type"] == "ephemeral"
    assert "not a cron expression" in bad["text"]
    with session_scope(engine) as session:
        assert get_setting(session, "retrain_schedule") == "30 6 * * 1-5"
    await run(slack, "schedule off")
    assert "off" in (await run(slack, "schedule", user=ALICE))["text"]
    with session_scope(engine) as session:
        assert get_setting(session, "retrain_schedule") == "off"
    assert audit_actions(engine).count((CURATOR, "setting.set")) == 2


async def test_dataset_counts_examples(slack, engine, count_tokens):
    with session_scope(engine) as session:
        add_examples(
            session,
            [NewExample([{"role": "user", "content": "hi"}], ExampleSource.IMPORT)],
            count_tokens,
        )
    answer = await run(slack, "dataset", user=ALICE)
    assert "1 approved (1 import)" in answer["text"]


async def test_knowledge_lists_what_the_bot_knows_compactly(slack, engine):
    from brandvoice.store.knowledge import PreparedChunk, PreparedDoc, store_documents

    answer = await run(slack, "knowledge", user=ALICE)
    assert answer["response_type"] == "ephemeral"
    assert answer["text"].startswith("*Knowledge:* none yet.")

    def doc(name: str, title: str, chunks: int) -> PreparedDoc:
        parts = [
            PreparedChunk(f"{title} {i}", 3, {}, f"{name}{i}", b"\0" * 8) for i in range(chunks)
        ]
        return PreparedDoc(name, f"/kb/{name}", title, name, parts)

    with session_scope(engine) as session:
        store_documents(session, [doc("shipping.md", "Shipping", 3), doc("faq.txt", "FAQ", 1)])
    answer = await run(slack, "knowledge", user=ALICE)
    lines = answer["text"].splitlines()
    assert lines[0] == "*Knowledge:* 2 file(s), 4 chunk(s)"
    assert lines[1].startswith("• `faq.txt` FAQ · 1 chunk(s) · <!date^")
    assert lines[2].startswith("• `shipping.md` Shipping · 3 chunk(s) · <!date^")
    assert "/brandvoice knowledge" in (await run(slack, "help"))["text"]
