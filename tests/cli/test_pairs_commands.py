"""``brandvoice pairs``: derive, list and export preference pairs, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import select

from brandvoice.inference.tokens import count_chat_tokens_batch
from brandvoice.store.db import make_engine, session_scope, upgrade
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.feedback import record_interaction
from brandvoice.store.models import ExampleSource, PreferencePair, VoteKind
from brandvoice.store.votes import record_vote
from tests.cli.test_data_commands import run  # noqa: F401  (the fixture)

PROMPT = [{"role": "system", "content": "Be Acme."}, {"role": "user", "content": "Refund?"}]


def seed(database_url: str) -> None:
    """A correction stored before pairs existed, and a 👎 reply answered well elsewhere."""
    engine = make_engine(database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        bad = record_interaction(
            session, channel="C", message_ts="1", prompt_messages=PROMPT, reply="No."
        )
        record_vote(session, interaction_id=bad.id, user="U1", reaction="-1", kind=VoteKind.DOWN)
        add_examples(
            session,
            [
                NewExample(
                    [*PROMPT, {"role": "assistant", "content": "Yes, within 30 days. Cheers"}],
                    ExampleSource.CORRECTION,
                    interaction_id=bad.id,
                    provenance={"rejected_reply": "Nope, never."},
                ),
                NewExample(
                    [*PROMPT, {"role": "assistant", "content": "Sure thing! Cheers"}],
                    ExampleSource.APPROVED_REPLY,
                ),
            ],
            count_chat_tokens_batch,
        )
    engine.dispose()


def test_derive_list_and_export_in_both_formats(run, database_url, tmp_path):  # noqa: F811
    seed(database_url)
    derived = run("pairs", "derive")
    assert derived.returncode == 0, derived.stderr
    assert "added 3 pair(s) (1 from corrections, 2 from downvotes)" in derived.stdout
    again = run("pairs", "derive")
    assert "added 0 pair(s); 3 already stored" in again.stdout

    listed = run("pairs", "list", "--source", "downvote", env={"COLUMNS": "250"})
    assert listed.returncode == 0, listed.stderr
    assert "Sure thing! Cheers" in listed.stdout and "U1" in listed.stdout
    assert "Nope, never." not in listed.stdout

    trl, oai = tmp_path / "trl.jsonl", tmp_path / "openai.jsonl"
    assert run("pairs", "export", str(trl)).returncode == 0
    exported = run("pairs", "export", "--format", "openai", str(oai))
    assert exported.returncode == 0 and "exported 3 pair(s)" in exported.stdout
    trl_rows = [json.loads(line) for line in trl.read_text().splitlines()]
    oai_rows = [json.loads(line) for line in oai.read_text().splitlines()]
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        pairs = list(session.exec(select(PreferencePair).order_by(PreferencePair.id)))
    engine.dispose()
    assert trl_rows == [
        {
            "prompt": p.prompt_messages,
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]
    assert oai_rows == [
        {
            "input": {"messages": p.prompt_messages},
            "preferred_output": [{"role": "assistant", "content": p.chosen}],
            "non_preferred_output": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]


def test_export_refuses_an_unknown_format_in_one_line(run, tmp_path: Path):  # noqa: F811
    result = run("pairs", "export", "--format", "csv", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "--format must be trl or openai, not 'csv'" in result.stderr
    assert "Traceback" not in result.stderr
