"""The scheduled check of the promoted version's 👎 rate: a worker tick calls it, it looks at
the store at most every ``interval`` and hands any alert to the publishers (Slack, the log)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine

from brandvoice.store.db import session_scope
from brandvoice.trainer.production_signal import (
    SignalAlert,
    SignalAlertConfig,
    check_promoted_signal,
)

log = logging.getLogger(__name__)

AlertPublisher = Callable[[SignalAlert], None]


def log_signal_alert(alert: SignalAlert) -> None:
    done = "rolled back automatically" if alert.rolled_back else "a curator can roll it back"
    log.warning(
        "%s gets significantly more thumbs-down than %s (%s against %s, p = %.2g); %s",
        alert.version,
        alert.predecessor,
        alert.current.down_rate.describe(),
        alert.previous.down_rate.describe(),
        alert.test.p_value,
        done,
    )


class SignalWatch:
    """Checks at most once per ``interval``; the store remembers alerts sent, so a restart or a
    second worker does not repeat one."""

    def __init__(
        self,
        engine: Engine,
        config: SignalAlertConfig,
        publishers: Sequence[AlertPublisher],
        interval: timedelta,
    ) -> None:
        self.engine, self.config, self.publishers = engine, config, list(publishers)
        self.interval = interval
        self._next: datetime | None = None

    def __call__(self, now: datetime) -> SignalAlert | None:
        if self._next is not None and now < self._next:
            return None
        self._next = now + self.interval
        with session_scope(self.engine) as session:
            alert = check_promoted_signal(session, self.config, now)
        if alert is None:
            return None
        for publish in self.publishers:
            try:
                publish(alert)
            except Exception:  # the alert is recorded and audited; one failed channel is logged
                log.exception("publishing the signal alert on %s failed", alert.version)
        return alert
