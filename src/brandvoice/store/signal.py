"""The production signal: how each model version fares with real people, with its uncertainty.

For the replies a version served (``Interaction`` rows with its id, in an optional window of the
time they were served), it counts

- the counted 👍 and 👎 votes on them (reactions and the feedback buttons are the same votes; a
  withdrawn vote does not count), and how many replies got any 👍/👎 and how many a 👎;
- approvals: replies collected as approved examples (source ``approved_reply``);
- corrections: replies someone corrected (an example of source ``correction``);

an example a curator later rejected counts for neither. Votes and examples count whenever they
were cast, as long as the reply was served in the window.

The rates are proportions of replies, so each reply is one trial and the Wilson interval applies:

- 👎 rate = replies with at least one 👎 ÷ replies with at least one 👍 or 👎 (unvoted replies say
  nothing about quality, and several 👎 on one reply are one bad reply);
- approval rate and correction rate = approved / corrected replies ÷ replies served.

Every version (and the base model, version id ``None``) is counted by three grouped queries,
however many versions there are.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import case, func
from sqlmodel import Session, col, select

from brandvoice.store.models import (
    Example,
    ExampleSource,
    ExampleStatus,
    FeedbackVote,
    Interaction,
    ModelVersion,
    VoteKind,
)

Z_95 = 1.959963984540054
"""The standard normal quantile of 0.975: a two-sided 95% interval."""
BASE_MODEL = "base model"
"""How the base model (replies served while nothing was promoted) is named in a signal."""


# --- statistics (pure) -------------------------------------------------------------------------


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95% by default); None without trials.

    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0 or n
    successes, which is the usual case for a version with few votes.
    """
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"{successes} successes out of {trials} trials is not a proportion")
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class ProportionTest:
    """A one-sided two-proportion z-test of "the new rate is higher than the old one"."""

    z: float
    p_value: float


def higher_proportion_test(
    new_successes: int, new_trials: int, old_successes: int, old_trials: int
) -> ProportionTest | None:
    """Test H1: p_new > p_old with the pooled two-proportion z statistic; None without trials.

    ``z = (p_new - p_old) / sqrt(p (1 - p) (1/n_new + 1/n_old))`` with ``p`` the pooled rate;
    when both rates are 0 or both 1 there is no variance and no evidence (p-value 1 or 0.5).
    """
    if new_trials <= 0 or old_trials <= 0:
        return None
    p_new, p_old = new_successes / new_trials, old_successes / old_trials
    pooled = (new_successes + old_successes) / (new_trials + old_trials)
    variance = pooled * (1 - pooled) * (1 / new_trials + 1 / old_trials)
    if variance <= 0:
        return ProportionTest(0.0, 0.5 if p_new == p_old else 1.0)
    z = (p_new - p_old) / math.sqrt(variance)
    return ProportionTest(z, normal_sf(z))


class RateEstimate(BaseModel):
    """``count`` of ``of`` replies, the rate and its 95% Wilson interval (None without replies)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int
    of: int
    rate: float | None = None
    low: float | None = None
    high: float | None = None

    @classmethod
    def of_counts(cls, count: int, of: int) -> RateEstimate:
        interval = wilson_interval(count, of)
        if interval is None:
            return cls(count=count, of=of)
        return cls(count=count, of=of, rate=count / of, low=interval[0], high=interval[1])

    def describe(self) -> str:
        """``22% (95% CI 12–37%, 9/40)``, or ``– (0/0)`` without replies."""
        if self.rate is None or self.low is None or self.high is None:
            return f"– ({self.count}/{self.of})"
        return (
            f"{self.rate:.0%} (95% CI {self.low * 100:.0f}–{self.high:.0%}, {self.count}/{self.of})"
        )


class VersionSignal(BaseModel):
    """How one version fared with people over a window of the replies it served."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    """The version's name, or ``base model``."""
    since: datetime | None = None
    """Replies served from this time on (None: since the beginning)."""
    until: datetime | None = None
    """Replies served before this time (None: up to now)."""
    served: int
    up_votes: int
    down_votes: int
    voted_replies: int
    """Replies with at least one counted 👍 or 👎."""
    downvoted_replies: int
    """Replies with at least one counted 👎."""
    approvals: int
    corrections: int
    down_rate: RateEstimate
    """Downvoted ÷ voted replies."""
    approval_rate: RateEstimate
    """Approved ÷ served replies."""
    correction_rate: RateEstimate
    """Corrected ÷ served replies."""

    def summary(self) -> str:
        """One line for chat and terminals."""
        if not self.served:
            return "no replies served"
        return (
            f"{self.served} replies · 👍 {self.up_votes} 👎 {self.down_votes} · "
            f"👎 rate {self.down_rate.describe()} · approved {self.approval_rate.describe()} · "
            f"corrected {self.correction_rate.describe()}"
        )


@dataclass(frozen=True)
class SignalCounts:
    """The raw counts of one version; ``signal`` turns them into rates."""

    served: int = 0
    up_votes: int = 0
    down_votes: int = 0
    voted_replies: int = 0
    downvoted_replies: int = 0
    approvals: int = 0
    corrections: int = 0

    def signal(
        self, version: str, since: datetime | None = None, until: datetime | None = None
    ) -> VersionSignal:
        return VersionSignal(
            version=version,
            since=since,
            until=until,
            served=self.served,
            up_votes=self.up_votes,
            down_votes=self.down_votes,
            voted_replies=self.voted_replies,
            downvoted_replies=self.downvoted_replies,
            approvals=self.approvals,
            corrections=self.corrections,
            down_rate=RateEstimate.of_counts(self.downvoted_replies, self.voted_replies),
            approval_rate=RateEstimate.of_counts(self.approvals, self.served),
            correction_rate=RateEstimate.of_counts(self.corrections, self.served),
        )


# --- queries -----------------------------------------------------------------------------------


def signal_counts(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    version_ids: Collection[int | None] | None = None,
) -> dict[int | None, SignalCounts]:
    """The counts of every version that served a reply in [``since``, ``until``), keyed by
    version id (None: the base model); only ``version_ids`` when given.

    Three grouped queries (replies, votes, examples) whatever the number of versions.
    """
    window = []
    if since is not None:
        window.append(col(Interaction.created_at) >= since)
    if until is not None:
        window.append(col(Interaction.created_at) < until)
    if version_ids is not None:
        ids = [i for i in version_ids if i is not None]
        chosen = col(Interaction.model_version_id).in_(sorted(ids))
        if None in version_ids:
            chosen = chosen | col(Interaction.model_version_id).is_(None)
        window.append(chosen)
    version = col(Interaction.model_version_id)

    served = session.exec(select(version, func.count()).where(*window).group_by(version))
    counts: dict[int | None, dict[str, int]] = {v: {"served": n} for v, n in served}

    vote_id = col(FeedbackVote.interaction_id)
    is_down = FeedbackVote.kind == VoteKind.DOWN
    votes = session.exec(
        select(
            version,
            func.count(case((FeedbackVote.kind == VoteKind.UP, 1))),
            func.count(case((is_down, 1))),
            func.count(func.distinct(vote_id)),
            func.count(func.distinct(case((is_down, vote_id)))),
        )
        .select_from(FeedbackVote)
        .join(Interaction, col(Interaction.id) == vote_id)
        .where(
            *window,
            col(FeedbackVote.retracted_at).is_(None),
            col(FeedbackVote.kind).in_([VoteKind.UP, VoteKind.DOWN]),
        )
        .group_by(version)
    )
    for v, up, down, voted, downvoted in votes:
        counts.setdefault(v, {}).update(
            up_votes=up, down_votes=down, voted_replies=voted, downvoted_replies=downvoted
        )

    example_of = col(Example.interaction_id)
    examples = session.exec(
        select(
            version,
            func.count(
                func.distinct(case((Example.source == ExampleSource.APPROVED_REPLY, example_of)))
            ),
            func.count(
                func.distinct(case((Example.source == ExampleSource.CORRECTION, example_of)))
            ),
        )
        .select_from(Example)
        .join(Interaction, col(Interaction.id) == example_of)
        .where(
            *window,
            Example.status != ExampleStatus.REJECTED,
            col(Example.source).in_([ExampleSource.APPROVED_REPLY, ExampleSource.CORRECTION]),
        )
        .group_by(version)
    )
    for v, approvals, corrections in examples:
        counts.setdefault(v, {}).update(approvals=approvals, corrections=corrections)
    return {v: SignalCounts(**values) for v, values in counts.items()}


def version_signals(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> dict[int | None, VersionSignal]:
    """The signal of every registered version and of the base model (None), zero where a
    version served nothing in the window; four queries in all."""
    counts = signal_counts(session, since=since, until=until)
    names: Mapping[int | None, str] = {
        id_: name for id_, name in session.exec(select(ModelVersion.id, ModelVersion.name))
    }
    return {
        id_: counts.get(id_, SignalCounts()).signal(
            BASE_MODEL if id_ is None else name, since, until
        )
        for id_, name in {None: BASE_MODEL, **names}.items()
    }


def version_signal(
    session: Session,
    version: ModelVersion | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> VersionSignal:
    """The signal of one version (None: the base model) in [``since``, ``until``)."""
    id_ = version.id if version is not None else None
    counts = signal_counts(session, since=since, until=until, version_ids={id_})
    name = version.name if version is not None else BASE_MODEL
    return counts.get(id_, SignalCounts()).signal(name, since, until)
