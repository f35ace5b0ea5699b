"""The production signal: Wilson intervals and the z-test against known values, and the counts
per version from the store in a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from brandvoice.store.db import session_scope
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.models import ExampleSource, ExampleStatus, VoteKind, utcnow
from brandvoice.store.signal import (
    RateEstimate,
    higher_proportion_test,
    signal_counts,
    version_signal,
    version_signals,
    wilson_interval,
)
from brandvoice.store.votes import record_vote, retract_vote
from brandvoice.trainer.registry import register_candidate
from tests.signal_data import serve


def rounded(interval: tuple[float, float] | None) -> tuple[float, float] | None:
    return None if interval is None else (round(interval[0], 3), round(interval[1], 3))


def test_wilson_intervals_match_published_values():
    assert rounded(wilson_interval(8, 10)) == (0.490, 0.943)
    assert rounded(wilson_interval(50, 100)) == (0.404, 0.596)
    assert rounded(wilson_interval(0, 10)) == (0.0, 0.278)  # never below 0, never degenerate
    assert rounded(wilson_interval(10, 10)) == (0.722, 1.0)
    assert rounded(wilson_interval(1, 1)) == (0.207, 1.0)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="11 successes out of 10 trials"):
        wilson_interval(11, 10)


def test_rate_estimates_describe_themselves():
    assert RateEstimate.of_counts(8, 10).describe() == "80% (95% CI 49–94%, 8/10)"
    assert RateEstimate.of_counts(0, 0) == RateEstimate(count=0, of=0)
    assert RateEstimate.of_counts(0, 0).describe() == "– (0/0)"


def test_the_two_proportion_z_test_matches_hand_computed_values():
    # pooled p = 0.25, se = sqrt(0.25 * 0.75 * (1/100 + 1/100)) = 0.0612372, z = 0.1 / se
    test = higher_proportion_test(30, 100, 20, 100)
    assert test is not None
    assert round(test.z, 4) == 1.633 and round(test.p_value, 4) == 0.0512
    strong = higher_proportion_test(20, 40, 4, 40)
    assert strong is not None and round(strong.z, 2) == 3.90 and strong.p_value < 0.0001
    better = higher_proportion_test(4, 40, 20, 40)
    assert better is not None and better.p_value > 0.99
    assert higher_proportion_test(0, 30, 0, 30).p_value == 0.5  # type: ignore[union-attr]
    assert higher_proportion_test(1, 0, 1, 10) is None


def test_votes_approvals_and_corrections_are_counted_per_version_and_window(engine, count_tokens):
    now = utcnow()
    with session_scope(engine) as session:
        v1 = register_candidate(session, base_model="base")
        v2 = register_candidate(session, base_model="base")
        register_candidate(session, base_model="base")  # v3 served nothing
        a, b, c, d = serve(session, v1.id, voted=0, downvoted=0, at=now, unvoted=4)
        [old] = serve(session, v1.id, voted=1, downvoted=1, at=now - timedelta(days=30))
        serve(session, v2.id, voted=5, downvoted=1, at=now)
        serve(session, None, voted=2, downvoted=2, at=now)  # the base model, before promotions

        def vote(interaction: int, user: str, kind: VoteKind) -> None:
            reaction = {"up": "+1", "down": "-1", "approve": "white_check_mark"}[kind.value]
            record_vote(
                session, interaction_id=interaction, user=user, reaction=reaction, kind=kind
            )

        vote(a, "U1", VoteKind.UP)
        vote(a, "U2", VoteKind.UP)
        vote(a, "U3", VoteKind.DOWN)  # one reply, 👍👍👎: one voted reply, downvoted
        vote(b, "U1", VoteKind.DOWN)
        vote(b, "U2", VoteKind.DOWN)
        retract_vote(session, interaction_id=b, user="U2", reaction="-1")  # withdrawn
        vote(c, "U9", VoteKind.APPROVE)  # a curator's approval is not a 👍/👎
        add_examples(
            session,
            [
                NewExample(
                    [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
                    source,
                    status,
                    interaction_id=interaction,
                )
                for i, (source, status, interaction) in enumerate(
                    [
                        (ExampleSource.APPROVED_REPLY, ExampleStatus.APPROVED, c),
                        (ExampleSource.CORRECTION, ExampleStatus.PENDING, b),
                        (ExampleSource.CORRECTION, ExampleStatus.APPROVED, b),  # same reply
                        (ExampleSource.CORRECTION, ExampleStatus.REJECTED, d),  # thrown out
                        (ExampleSource.APPROVED_REPLY, ExampleStatus.APPROVED, old),
                    ]
                )
            ],
            count_tokens,
        )

    with session_scope(engine) as session:
        signals = version_signals(session, since=now - timedelta(days=7))
        all_time = version_signal(session, v1)
        counts = signal_counts(session, version_ids={v2.id})

    first = signals[v1.id]
    assert (first.version, first.served) == ("v1", 4)
    assert (first.up_votes, first.down_votes) == (2, 2)
    assert (first.voted_replies, first.downvoted_replies) == (2, 2)
    assert (first.approvals, first.corrections) == (1, 1)
    assert first.down_rate.describe() == "100% (95% CI 34–100%, 2/2)"
    assert first.approval_rate == RateEstimate.of_counts(1, 4)
    assert first.correction_rate == RateEstimate.of_counts(1, 4)
    assert (all_time.served, all_time.approvals, all_time.downvoted_replies) == (5, 2, 3)
    assert all_time.since is None

    second = signals[v2.id]
    assert (second.served, second.voted_replies, second.downvoted_replies) == (5, 5, 1)
    assert (second.up_votes, second.down_votes) == (4, 1)
    assert list(counts) == [v2.id] and counts[v2.id].served == 5
    assert signals[None].version == "base model" and signals[None].downvoted_replies == 2
    third = signals[3]
    assert third.served == 0 and third.down_rate.rate is None
    assert third.summary() == "no replies served"


def test_every_version_is_counted_in_four_queries(engine):
    with session_scope(engine) as session:
        for _ in range(12):
            version = register_candidate(session, base_model="base")
            serve(session, version.id, voted=3, downvoted=1, at=utcnow(), unvoted=1)
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    with session_scope(engine) as session:
        session.connection()  # the transaction's own statements (BEGIN) are not counted
        event.listen(engine, "before_cursor_execute", seen)
        try:
            signals = version_signals(session)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
    assert len(signals) == 13
    assert all(s.served == 4 and s.downvoted_replies == 1 for k, s in signals.items() if k)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 4
