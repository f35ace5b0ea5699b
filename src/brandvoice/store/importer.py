"""Importing and exporting JSONL datasets.

An import is all or nothing: with any bad line nothing is written unless the caller asks to skip
invalid lines, and the inserts run in the caller's single transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.jsonl import DEFAULT_MAX_TOKENS, TokenCounter, ValidationReport, validate_file
from brandvoice.store.models import Example, ExampleSource, ExampleStatus, Split
from brandvoice.store.redact import Redactor


class ImportRefused(ValueError):
    """The file has bad lines and ``skip_invalid`` was not set; nothing was imported."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(
            f"{report.path}: {len(report.problems)} invalid line(s); nothing imported "
            "(fix them, or pass --skip-invalid to import the valid lines)"
        )


@dataclass
class ImportResult:
    report: ValidationReport
    inserted: int
    duplicates: int
    redactions: dict[str, int]
    allowed: int = 0


def import_jsonl(
    session: Session,
    path: Path,
    count_tokens: TokenCounter,
    *,
    actor: str = "cli",
    skip_invalid: bool = False,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    redactor: Redactor | None = None,
    val_share: float = 0.2,
) -> ImportResult:
    """Validate ``path`` and add its examples as approved imports (duplicates skipped)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    report = validate_file(path, count_tokens, max_tokens)
    if report.problems and not skip_invalid:
        raise ImportRefused(report)
    new = [
        NewExample(
            messages=record.messages,
            source=ExampleSource.IMPORT,
            status=ExampleStatus.APPROVED,
            approvers=[actor],
            provenance={"file": path.name, "line": record.line},
            created_by=actor,
            token_count=record.token_count,
        )
        for record in report.records
    ]
    added = add_examples(session, new, count_tokens, redactor, val_share)
    return ImportResult(
        report, len(added.inserted_ids), added.duplicates, added.redactions, added.allowed
    )


def iter_export(session: Session, split: Split | None = None) -> Iterator[list[dict[str, Any]]]:
    """Approved examples' messages in insertion order, optionally one split only."""
    query = (
        select(Example.messages)
        .where(Example.status == ExampleStatus.APPROVED)
        .order_by(col(Example.id))
    )
    if split is not None:
        query = query.where(Example.split == split)
    yield from session.exec(query)
