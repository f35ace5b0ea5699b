"""``brandvoice audit``: who did (or was refused) what, and when."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from brandvoice.bot.cli.context import CliError, console, engine, friendly_errors
from brandvoice.store.audit import query_audit
from brandvoice.store.db import session_scope
from brandvoice.store.models import as_utc

_AGO = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``30m``, ``12h``, ``7d``, ``2w`` ago, or an ISO 8601 date or time (UTC unless it says)."""
    now = now or datetime.now(UTC)
    ago = _AGO.match(value.strip().lower())
    if ago:
        return now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CliError(
            f"--since {value!r} is neither a duration (30m, 12h, 7d, 2w) nor an ISO 8601 "
            "date or time (2026-11-30, 2026-11-30T08:00+01:00)"
        ) from None
    return as_utc(when)


@friendly_errors
def audit_command(
    actor: Annotated[
        str | None, typer.Option(help="Only this actor (a Slack user id, cli, api).")
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(help="Only this action, e.g. model.promote or model.promote.refused."),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Only entries about this model version.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Since a time (ISO 8601) or a duration ago (7d).")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, help="At most this many, newest first.")
    ] = 50,
) -> None:
    """Show the audit log: promotions, rollbacks, runs, approvals and refused attempts."""
    start = parse_since(since) if since else None
    with session_scope(engine()) as session:
        rows = query_audit(
            session, actor=actor, action=action, target=version, since=start, limit=limit
        )
    if not rows:
        console.print("no audit entries match")
        return
    table = Table()
    for column in ("time (UTC)", "actor", "action", "target", "details"):
        table.add_column(column)
    for row in rows:
        created = as_utc(row.created_at)
        refused = row.action.endswith(".refused")
        table.add_row(
            f"{created.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            row.actor,
            f"[red]{row.action}[/red]" if refused else row.action,
            row.target or "",
            json.dumps(row.details, ensure_ascii=False) if row.details else "",
        )
    console.print(table)
