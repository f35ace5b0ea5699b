"""Replies served and votes cast, written through the store's own functions, for tests of the
production signal."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from brandvoice.store.db import session_scope
from brandvoice.store.models import Interaction, VoteKind
from brandvoice.store.votes import record_vote
from brandvoice.trainer.registry import get_version, promote_version, register_candidate

_messages = itertools.count(1)


def serve(
    session: Session,
    version_id: int | None,
    *,
    voted: int,
    downvoted: int,
    at: datetime,
    unvoted: int = 0,
) -> list[int]:
    """``voted`` replies of ``version_id`` served at ``at``, the first ``downvoted`` with a 👎 and
    the others with a 👍, then ``unvoted`` replies nobody voted on; returns their ids."""
    ids = []
    for i in range(voted + unvoted):
        n = next(_messages)
        interaction = Interaction(
            channel="C0GENERAL",
            message_ts=f"1700000000.{n:06d}",
            prompt_messages=[{"role": "user", "content": f"question {n}"}],
            reply=f"answer {n}",
            model_version_id=version_id,
            created_at=at,
        )
        session.add(interaction)
        session.flush()
        assert interaction.id is not None
        if i < voted:
            down = i < downvoted
            record_vote(
                session,
                interaction_id=interaction.id,
                user=f"U{n:06d}",
                reaction="-1" if down else "+1",
                kind=VoteKind.DOWN if down else VoteKind.UP,
                at=at,
            )
        ids.append(interaction.id)
    return ids


@dataclass(frozen=True)
class Promotion:
    promoted_at: datetime
    """When v2 replaced v1 in production."""
    now: datetime
    """A moment two hours later, when the check runs."""


def promoted_after(
    engine: Engine, *, before: tuple[int, int], after: tuple[int, int], by: str
) -> Promotion:
    """v1 promoted, then v2 promoted by ``by``; v1 served ``before`` = (voted, downvoted)
    replies in the hour before v2's promotion, v2 served ``after`` in the hour after it."""
    with session_scope(engine) as session:
        v1 = register_candidate(session, base_model="base")
        v2 = register_candidate(session, base_model="base")
        promote_version(session, "v1", by)
    with session_scope(engine) as session:
        promote_version(session, "v2", by)
    with session_scope(engine) as session:
        promoted_at = get_version(session, "v2").promoted_at
        assert promoted_at is not None
        serve(
            session,
            v1.id,
            voted=before[0],
            downvoted=before[1],
            at=promoted_at - timedelta(hours=1),
        )
        serve(
            session,
            v2.id,
            voted=after[0],
            downvoted=after[1],
            at=promoted_at + timedelta(minutes=1),
        )
    return Promotion(promoted_at, promoted_at + timedelta(hours=2))
