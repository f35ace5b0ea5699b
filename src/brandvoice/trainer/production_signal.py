"""The production signal around the registry: in reports, and the alert when a promotion made
replies worse.

The alert compares the 👎 rate of the promoted version, over its latest window, with the rate of
the version a rollback would restore, over the same length of time before the promotion. The test
is a one-sided two-proportion z-test (pooled variance) of "the promoted version's 👎 rate is
higher", at level ``alpha``; each version needs ``min_votes`` voted replies first. It fires at most
once per promoted version and window, in any number of workers (a marker in the settings table),
and rolls back only when ``auto_rollback`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from brandvoice.store.audit import record_audit
from brandvoice.store.kv import claim_setting
from brandvoice.store.models import ModelVersion
from brandvoice.store.signal import (
    BASE_MODEL,
    ProportionTest,
    VersionSignal,
    higher_proportion_test,
    version_signal,
)
from brandvoice.trainer.eval_report import ProductionSignal
from brandvoice.trainer.registry import previous_good_version, promoted_version, rollback

AUTO_ACTOR = "brandvoice"
"""Who the audit log names for what brandvoice did by itself (alerts, automatic rollbacks)."""
ALERT_ACTION = "model.signal_alert"


def report_signal(
    session: Session,
    candidate: ModelVersion | None,
    window: timedelta | None,
    now: datetime,
) -> ProductionSignal:
    """The signal shown in a report: production (the promoted version, or the base model) and
    ``candidate`` once it has served replies, over the last ``window`` (None: all time)."""
    since = now - window if window is not None else None
    current = promoted_version(session)
    production = version_signal(session, current, since=since)
    shown: VersionSignal | None = None
    if candidate is not None and (current is None or candidate.id != current.id):
        shown = version_signal(session, candidate, since=since)
    hours = window.total_seconds() / 3600 if window is not None else None
    return ProductionSignal(
        measured_at=now,
        window_hours=hours,
        production=production,
        candidate=shown if shown is not None and shown.served else None,
    )


@dataclass(frozen=True)
class SignalAlertConfig:
    window: timedelta = timedelta(hours=168)
    min_votes: int = 20
    """Voted replies each version needs before their 👎 rates are compared."""
    alpha: float = 0.05
    auto_rollback: bool = False


@dataclass(frozen=True)
class SignalAlert:
    """A promoted version whose 👎 rate is significantly worse than its predecessor's."""

    version: str
    predecessor: str
    """What a rollback restores: a version name or ``base model``."""
    current: VersionSignal
    previous: VersionSignal
    test: ProportionTest
    alpha: float
    window_hours: float
    rolled_back: bool = False
    """True when AUTO_ROLLBACK rolled the version back already."""


def significantly_worse(
    current: VersionSignal, previous: VersionSignal, *, alpha: float, min_votes: int
) -> ProportionTest | None:
    """The test when ``current``'s 👎 rate is higher than ``previous``'s at level ``alpha``,
    both with at least ``min_votes`` voted replies; None otherwise."""
    if min(current.voted_replies, previous.voted_replies) < max(min_votes, 1):
        return None
    test = higher_proportion_test(
        current.downvoted_replies,
        current.voted_replies,
        previous.downvoted_replies,
        previous.voted_replies,
    )
    if test is None or test.p_value >= alpha:
        return None
    return test


def check_promoted_signal(
    session: Session, config: SignalAlertConfig, now: datetime
) -> SignalAlert | None:
    """Compare the promoted version with its predecessor; the alert to post, at most once per
    promoted version and window, else None. With ``auto_rollback`` the version is rolled back
    (audited, actor ``brandvoice``) in the same transaction as the alert's marker."""
    current = promoted_version(session)
    if current is None or current.promoted_at is None:
        return None
    promoted_at = current.promoted_at
    window = config.window
    previous = previous_good_version(session, current)
    mine = version_signal(session, current, since=max(now - window, promoted_at))
    theirs = version_signal(session, previous, since=promoted_at - window, until=promoted_at)
    test = significantly_worse(mine, theirs, alpha=config.alpha, min_votes=config.min_votes)
    if test is None:
        return None
    window_no = max(0, int((now - promoted_at) / window))
    marker = f"signal_alert:{current.name}:{promoted_at.isoformat()}:{window_no}"
    details: dict[str, Any] = {
        "predecessor": previous.name if previous else BASE_MODEL,
        "down_rate": [mine.downvoted_replies, mine.voted_replies],
        "predecessor_down_rate": [theirs.downvoted_replies, theirs.voted_replies],
        "z": round(test.z, 3),
        "p_value": test.p_value,
        "alpha": config.alpha,
    }
    if not claim_setting(session, marker, {"at": now.isoformat(), **details}, AUTO_ACTOR):
        return None
    record_audit(session, AUTO_ACTOR, ALERT_ACTION, current.name, details)
    rolled_back = False
    if config.auto_rollback:
        rollback(session, AUTO_ACTOR, only=current.name)
        rolled_back = True
    return SignalAlert(
        version=current.name,
        predecessor=previous.name if previous else BASE_MODEL,
        current=mine,
        previous=theirs,
        test=test,
        alpha=config.alpha,
        window_hours=window.total_seconds() / 3600,
        rolled_back=rolled_back,
    )
