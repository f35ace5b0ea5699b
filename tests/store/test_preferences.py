"""Preference pairs: derived from corrections and from 👎 replies answered well elsewhere,
idempotent, redacted, and split so that no validation prompt is ever trained on."""

from __future__ import annotations

import json
import random
from pathlib import Path

from sqlmodel import select

from brandvoice.store.db import session_scope
from brandvoice.store.examples import NewExample, add_examples, set_example_status, split_for_hash
from brandvoice.store.feedback import collect_if_approved, record_interaction, submit_correction
from brandvoice.store.models import (
    Example,
    ExampleSource,
    ExampleStatus,
    ModelVersion,
    PreferencePair,
    PreferenceSource,
    Split,
    VoteKind,
)
from brandvoice.store.preference_jsonl import read_preference_jsonl
from brandvoice.store.preferences import (
    derive_preference_pairs,
    export_pairs,
    prompt_hash,
    split_pairs,
    trainable_pairs,
)
from brandvoice.store.snapshots import preference_paths, snapshot_dataset, snapshot_hash
from brandvoice.store.votes import record_vote, retract_vote


def prompt(question: str, system: str = "You are Acme's voice.") -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def versions(session, *names: str) -> list[int]:
    rows = [ModelVersion(name=name, base_model="base") for name in names]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


def ask(session, ts: str, question: str, reply: str, version: int | None = None, **kw):
    return record_interaction(
        session,
        channel="C1",
        message_ts=ts,
        prompt_messages=prompt(question, **kw),
        reply=reply,
        model_version_id=version,
    )


def vote(session, interaction, user: str, kind: VoteKind = VoteKind.DOWN) -> None:
    reaction = {VoteKind.DOWN: "-1", VoteKind.UP: "+1", VoteKind.APPROVE: "white_check_mark"}
    record_vote(
        session, interaction_id=interaction.id, user=user, reaction=reaction[kind], kind=kind
    )


def approve(session, interaction, count_tokens, curator: str = "UCUR") -> int:
    vote(session, interaction, curator, VoteKind.APPROVE)
    example_id = collect_if_approved(session, interaction, quorum=2, count_tokens=count_tokens)
    assert example_id is not None
    return example_id


def fillers(n: int = 12) -> list[NewExample]:
    """Approved imported examples, so snapshots have training examples."""
    return [
        NewExample(
            [
                {"role": "user", "content": f"filler {i}"},
                {"role": "assistant", "content": f"ok {i}"},
            ],
            ExampleSource.IMPORT,
        )
        for i in range(n)
    ]


def all_pairs(session) -> list[PreferencePair]:
    return list(session.exec(select(PreferencePair).order_by(PreferencePair.id)))


# --- corrections ---------------------------------------------------------------------------------


def test_a_correction_stores_its_pair_in_the_same_transaction(engine, count_tokens):
    with session_scope(engine) as session:
        (v1,) = versions(session, "v1")
        interaction = ask(session, "1.1", "Can I get a refund?", "No refunds. Bye", v1)
        vote(session, interaction, "U1")
        result = submit_correction(
            session,
            interaction,
            "  Of course, refunds take 5 days. Cheers, Acme  ",
            user="UCUR",
            approved=True,
            count_tokens=count_tokens,
        )
    assert result.example_id is not None and result.pair_id is not None
    with session_scope(engine) as session:
        (pair,) = all_pairs(session)
        assert pair.id == result.pair_id
        assert pair.source == PreferenceSource.CORRECTION
        assert pair.prompt_messages == prompt("Can I get a refund?")
        assert (pair.chosen, pair.rejected) == (
            "Of course, refunds take 5 days. Cheers, Acme",
            "No refunds. Bye",
        )
        assert pair.example_id == result.example_id and pair.interaction_id == interaction.id
        assert pair.provenance == {
            "interaction_id": interaction.id,
            "chosen_example_id": result.example_id,
            "chosen_interaction_id": interaction.id,
            "corrected_by": "UCUR",
            "voters": ["U1"],
            "rejected_model_version_id": v1,
            "chosen_model_version_id": None,
            "model_version_ids": [v1],
        }
        # Deriving afterwards finds the pair already stored, as a correction and as a 👎 reply
        # answered by that correction.
        again = derive_preference_pairs(session)
    assert again.inserted_ids == [] and again.duplicates == 2


def test_a_correction_that_fails_rolls_back_its_pair_too(engine, count_tokens):
    with session_scope(engine) as session:
        interaction = ask(session, "1.1", "Hi?", "Hello")
    try:
        with session_scope(engine) as session:
            submit_correction(
                session,
                interaction,
                "Hey there!",
                user="U",
                approved=False,
                count_tokens=count_tokens,
            )
            raise RuntimeError("the Slack reply failed")
    except RuntimeError:
        pass
    with session_scope(engine) as session:
        assert all_pairs(session) == []
        assert list(session.exec(select(Example))) == []


def test_existing_corrections_are_backfilled_once(engine, count_tokens):
    """Corrections stored before pairs existed: the example keeps ``rejected_reply``."""
    with session_scope(engine) as session:
        interaction = ask(session, "1.1", "Opening hours?", "We never close.")
        correction = NewExample(
            messages=[
                *prompt("Opening hours?"),
                {"role": "assistant", "content": "9 to 5. Cheers, Acme"},
            ],
            source=ExampleSource.CORRECTION,
            interaction_id=interaction.id,
            created_by="U7",
            provenance={"rejected_reply": "We never close.", "interaction_id": interaction.id},
        )
        no_pair = NewExample(
            messages=[*prompt("Other?"), {"role": "assistant", "content": "Sure."}],
            source=ExampleSource.CORRECTION,
            provenance={},
        )
        add_examples(session, [correction, no_pair], count_tokens)
    with session_scope(engine) as session:
        first = derive_preference_pairs(session)
    with session_scope(engine) as session:
        second = derive_preference_pairs(session)
        (pair,) = all_pairs(session)
    assert len(first.inserted_ids) == 1 and first.by_source == {"correction": 1}
    assert second.inserted_ids == [] and second.duplicates == 1
    assert (pair.chosen, pair.rejected) == ("9 to 5. Cheers, Acme", "We never close.")
    assert pair.provenance["corrected_by"] == "U7"


def test_a_pending_correction_trains_only_once_approved(engine, count_tokens, tmp_path):
    with session_scope(engine) as session:
        add_examples(session, fillers(), count_tokens)
        interaction = ask(session, "1.1", "Do you ship abroad?", "No.")
        result = submit_correction(
            session,
            interaction,
            "Yes, to 30 countries. Cheers, Acme",
            user="U2",
            approved=False,
            count_tokens=count_tokens,
        )
    with session_scope(engine) as session:
        assert trainable_pairs(session) == []
        snapshot, _ = snapshot_dataset(session, tmp_path)
        assert snapshot.stats["preference"]["train"] + snapshot.stats["preference"]["val"] == 0
    with session_scope(engine) as session:
        set_example_status(session, result.example_id, ExampleStatus.APPROVED, "UCUR")
    with session_scope(engine) as session:
        (pair,) = trainable_pairs(session)
        snapshot, created = snapshot_dataset(session, tmp_path)
    assert created
    stats = snapshot.stats["preference"]
    assert stats["train_ids"] + stats["val_ids"] == [pair.id]


def test_a_correction_that_repeats_the_reply_is_no_pair(engine, count_tokens):
    with session_scope(engine) as session:
        interaction = ask(session, "1.1", "Hi?", "Hello there")
        result = submit_correction(
            session,
            interaction,
            " hello   THERE ",
            user="U",
            approved=True,
            count_tokens=count_tokens,
        )
        assert result.pair_id is None and all_pairs(session) == []


def test_pair_texts_are_redacted_like_examples(engine, count_tokens):
    with session_scope(engine) as session:
        interaction = ask(
            session,
            "1.1",
            "Mail jane.doe@example.com about it?",
            "Sure, I mailed jane.doe@example.com",
        )
        submit_correction(
            session,
            interaction,
            "Done. Cheers, Acme",
            user="U",
            approved=True,
            count_tokens=count_tokens,
        )
        (pair,) = all_pairs(session)
    assert "jane.doe@example.com" not in json.dumps(
        [pair.prompt_messages, pair.chosen, pair.rejected]
    )
    assert "<EMAIL>" in pair.rejected and pair.redactions == {"EMAIL": 2}


# --- 👎 replies answered well elsewhere -------------------------------------------------------------


def test_a_downvoted_reply_pairs_with_a_later_approved_reply_to_the_same_request(
    engine, count_tokens
):
    with session_scope(engine) as session:
        v1, v2 = versions(session, "v1", "v2")
        bad = ask(session, "1.1", "Where is my order?", "Dunno.", v1)
        vote(session, bad, "U1")
        vote(session, bad, "U2")
        vote(session, bad, "U1")  # counted once
        # The same request, asked again (new system prompt, other spacing and case) and approved.
        good = ask(
            session,
            "2.2",
            "  where is my ORDER? ",
            "It ships today. Cheers, Acme",
            v2,
            system="New guidelines.",
        )
        good_example = approve(session, good, count_tokens)
        unrelated = ask(session, "3.3", "Something else", "Fine.", v2)
        approve(session, unrelated, count_tokens)
    with session_scope(engine) as session:
        result = derive_preference_pairs(session)
        (pair,) = all_pairs(session)
    assert result.by_source == {"downvote": 1}
    assert pair.source == PreferenceSource.DOWNVOTE
    assert pair.prompt_messages == prompt("  where is my ORDER? ", system="New guidelines.")
    assert (pair.chosen, pair.rejected) == ("It ships today. Cheers, Acme", "Dunno.")
    assert (pair.example_id, pair.interaction_id) == (good_example, bad.id)
    assert pair.provenance == {
        "interaction_id": bad.id,
        "chosen_example_id": good_example,
        "chosen_interaction_id": good.id,
        "chosen_source": "approved_reply",
        "corrected_by": None,
        "voters": ["U1", "U2"],
        "rejected_model_version_id": v1,
        "chosen_model_version_id": v2,
        "model_version_ids": [v1, v2],
    }


def test_a_correction_elsewhere_is_a_chosen_reply_for_a_downvoted_one(engine, count_tokens):
    with session_scope(engine) as session:
        bad = ask(session, "1.1", "Price of the pro plan?", "It is free.")
        vote(session, bad, "U1")
        other = ask(session, "2.2", "Price of the pro plan?", "Ask sales.")
        submit_correction(
            session,
            other,
            "$20 a month. Cheers, Acme",
            user="UCUR",
            approved=True,
            count_tokens=count_tokens,
        )
    with session_scope(engine) as session:
        derive_preference_pairs(session)
        pairs = {(p.source, p.rejected): p for p in all_pairs(session)}
    assert set(pairs) == {
        (PreferenceSource.CORRECTION, "Ask sales."),
        (PreferenceSource.DOWNVOTE, "It is free."),
    }
    downvote = pairs[(PreferenceSource.DOWNVOTE, "It is free.")]
    assert downvote.chosen == "$20 a month. Cheers, Acme"
    assert downvote.provenance["chosen_source"] == "correction"
    assert downvote.provenance["corrected_by"] == "UCUR"


def test_withdrawn_votes_and_replies_the_team_approved_give_no_pairs(engine, count_tokens):
    with session_scope(engine) as session:
        withdrawn = ask(session, "1.1", "Q1", "bad one")
        vote(session, withdrawn, "U1")
        retract_vote(session, interaction_id=withdrawn.id, user="U1", reaction="-1")
        disputed = ask(session, "1.2", "Q2", "disputed")
        vote(session, disputed, "U1")
        approve(session, disputed, count_tokens)  # a curator approved it anyway
        upvoted = ask(session, "1.3", "Q3", "liked")
        vote(session, upvoted, "U1", VoteKind.UP)
        for ts, question in (("2.1", "Q1"), ("2.2", "Q2"), ("2.3", "Q3")):
            approve(session, ask(session, ts, question, f"good answer to {question}"), count_tokens)
    with session_scope(engine) as session:
        assert derive_preference_pairs(session).inserted_ids == []


def test_a_downvote_withdrawn_after_derivation_leaves_the_snapshot(engine, count_tokens, tmp_path):
    with session_scope(engine) as session:
        add_examples(session, fillers(), count_tokens)
        bad = ask(session, "1.1", "Q", "bad")
        vote(session, bad, "U1")
        approve(session, ask(session, "2.1", "Q", "good"), count_tokens)
        first, _ = snapshot_dataset(session, tmp_path)
    assert first.stats["preference"]["by_source"] == {"downvote": 1}
    with session_scope(engine) as session:
        retract_vote(session, interaction_id=bad.id, user="U1", reaction="-1")
    with session_scope(engine) as session:
        second, created = snapshot_dataset(session, tmp_path)
    assert created and second.stats["preference"]["by_source"] == {}


def test_deriving_twice_adds_nothing(engine, count_tokens):
    with session_scope(engine) as session:
        for i in range(5):
            bad = ask(session, f"1.{i}", f"question {i}", f"bad {i}")
            vote(session, bad, "U1")
            approve(session, ask(session, f"2.{i}", f"question {i}", f"good {i}"), count_tokens)
            submit_correction(
                session,
                ask(session, f"3.{i}", f"question {i}", f"meh {i}"),
                f"best {i}",
                user="UCUR",
                approved=True,
                count_tokens=count_tokens,
            )
    with session_scope(engine) as session:
        first = derive_preference_pairs(session)
        stored = [(p.id, p.content_hash, p.split) for p in all_pairs(session)]
    with session_scope(engine) as session:
        second = derive_preference_pairs(session)
        assert [(p.id, p.content_hash, p.split) for p in all_pairs(session)] == stored
    # 5 corrections stored live; 👎 pairs: each bad reply against the approved reply and the
    # correction of its question.
    assert first.by_source == {"downvote": 10} and second.inserted_ids == []
    assert len(stored) == 15


# --- split and leakage -----------------------------------------------------------------------------


def test_pairs_of_a_validation_prompt_never_train(engine, count_tokens, tmp_path):
    """Property over many random prompts: the pair's split is its prompt hash's (or validation,
    when a validation example has that prompt), and preference_train holds no validation prompt
    (of a pair, or of an example)."""
    rng = random.Random(14)
    words = ["order", "refund", "ship", "track", "plan", "price", "invoice", "account", "hours"]
    with session_scope(engine) as session:
        add_examples(session, fillers(), count_tokens)
        for i in range(150):
            question = " ".join(rng.choices(words, k=4)) + f" #{i}"
            interaction = ask(session, f"{i}.1", question, f"bad reply {i}")
            if i % 3 == 0:  # some prompts are also examples (the correction's own conversation)
                submit_correction(
                    session,
                    interaction,
                    f"corrected {i}",
                    user="UCUR",
                    approved=True,
                    count_tokens=count_tokens,
                )
            else:
                vote(session, interaction, "U1")
                approve(session, ask(session, f"{i}.2", question, f"good reply {i}"), count_tokens)
        snapshot, _ = snapshot_dataset(session, tmp_path)
        val_example_prompts = {
            prompt_hash(e.messages[:-1])
            for e in session.exec(select(Example).where(Example.split == Split.VAL))
        }
        pairs = all_pairs(session)
    assert len(pairs) == 150
    for pair in pairs:
        held_out = pair.prompt_hash in val_example_prompts
        assert pair.split == (Split.VAL if held_out else split_for_hash(pair.prompt_hash))
    train_path, val_path = preference_paths(snapshot)
    train = read_preference_jsonl(train_path)
    val = read_preference_jsonl(val_path)
    assert len(train) == snapshot.stats["preference"]["train"] > 0
    assert len(val) == snapshot.stats["preference"]["val"] > 0
    train_prompts = {prompt_hash(r.prompt) for r in train}
    assert not train_prompts & {prompt_hash(r.prompt) for r in val}
    assert not train_prompts & val_example_prompts


def test_a_prompt_that_becomes_validation_later_moves_its_pairs(engine, count_tokens):
    with session_scope(engine) as session:
        bad = ask(session, "1.1", "Q", "bad")
        vote(session, bad, "U1")
        good = approve(session, ask(session, "2.1", "Q", "good"), count_tokens)
        derive_preference_pairs(session)
        (pair,) = all_pairs(session)
        pair.split = Split.TRAIN  # as if its prompt hashed to train
        session.add(pair)
        example = session.get(Example, good)
        example.split = Split.VAL  # e.g. held out by the first snapshot with 5 examples
        session.add(example)
    with session_scope(engine) as session:
        train, val = split_pairs(session, trainable_pairs(session))
        assert (train, [p.id for p in val]) == ([], [pair.id])
    with session_scope(engine) as session:
        assert session.get(PreferencePair, pair.id).split == Split.VAL  # for good


# --- snapshots and export ----------------------------------------------------------------------------


def test_snapshot_files_are_trl_preference_jsonl_and_pairs_change_the_hash(
    engine, count_tokens, tmp_path
):
    with session_scope(engine) as session:
        add_examples(session, fillers(), count_tokens)
        before, _ = snapshot_dataset(session, tmp_path)
        examples_only = snapshot_hash(*_examples_of(session, before))
    assert before.content_hash == examples_only  # no pairs: the hash pairs never existed for
    assert before.stats["preference"] == {
        "train": 0,
        "val": 0,
        "by_source": {},
        "train_ids": [],
        "val_ids": [],
    }
    assert [p.read_text() for p in preference_paths(before)] == ["", ""]
    with session_scope(engine) as session:
        for i in range(8):
            submit_correction(
                session,
                ask(session, f"{i}.1", f"question {i}", f"bad {i}"),
                f"good {i}",
                user="UCUR",
                approved=True,
                count_tokens=count_tokens,
            )
        after, created = snapshot_dataset(session, tmp_path)
        pairs = {p.id: p for p in all_pairs(session)}
    assert created and after.content_hash != before.content_hash
    stats = after.stats["preference"]
    assert stats["train"] + stats["val"] == 8 and stats["by_source"] == {"correction": 8}
    train_path, val_path = preference_paths(after)
    assert train_path.parent == Path(after.train_path).parent
    lines = [json.loads(line) for line in train_path.read_text().splitlines()]
    assert lines == [
        {
            "prompt": pairs[i].prompt_messages,
            "chosen": [{"role": "assistant", "content": pairs[i].chosen}],
            "rejected": [{"role": "assistant", "content": pairs[i].rejected}],
        }
        for i in stats["train_ids"]
    ]
    assert len(read_preference_jsonl(val_path)) == stats["val"]
    with session_scope(engine) as session:
        again, created = snapshot_dataset(session, tmp_path)
    assert not created and again.id == after.id


def _examples_of(session, snapshot):
    examples = {e.id: e for e in session.exec(select(Example))}
    chosen = [examples[i] for i in snapshot.example_ids]
    return [e for e in chosen if e.split == Split.TRAIN], [
        e for e in chosen if e.split == Split.VAL
    ]


def test_export_holds_what_a_snapshot_would(engine, count_tokens):
    with session_scope(engine) as session:
        for i in range(10):
            submit_correction(
                session,
                ask(session, f"{i}.1", f"q {i}", f"bad {i}"),
                f"good {i}",
                user="U",
                approved=i % 2 == 0,
                count_tokens=count_tokens,
            )
        exported = export_pairs(session)
        train, val = export_pairs(session, Split.TRAIN), export_pairs(session, Split.VAL)
    assert len(exported) == 5  # the approved corrections only
    assert sorted(p.id for p in (*train, *val)) == [p.id for p in exported]
