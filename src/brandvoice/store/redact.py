"""Redaction of secrets and personal data before anything is stored or leaves the machine.

Each match is replaced by a typed placeholder (``<EMAIL>``, ``<SLACK_TOKEN>``...) and counted, so
an example records what was removed without keeping it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Order matters: specific secrets before the generic shapes they could also match.
PATTERNS: dict[str, str] = {
    "PRIVATE_KEY": r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    "SLACK_TOKEN": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    "API_KEY": r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}",
    "AWS_ACCESS_KEY": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "AWS_SECRET_KEY": r"(?i)(?<=aws_secret_access_key)(\s*[=:]\s*)[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
    "EMAIL": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
    "CARD_NUMBER": r"\b(?:\d[ -]?){12,18}\d\b",
    "PHONE": r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)|\d{2,4})[\s.-]\d{3,4}[\s.-]\d{3,4}\b",
}


@dataclass(frozen=True)
class Redactor:
    """Compiled patterns for the enabled kinds; ``Redactor()`` enables all of them."""

    kinds: tuple[str, ...] = tuple(PATTERNS)
    _compiled: tuple[tuple[str, re.Pattern[str]], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(PATTERNS)
        if unknown:
            raise ValueError(
                f"unknown redaction kinds {sorted(unknown)}; known: {', '.join(PATTERNS)}"
            )
        compiled = tuple((kind, re.compile(PATTERNS[kind])) for kind in self.kinds)
        object.__setattr__(self, "_compiled", compiled)

    def redact_text(self, text: str) -> tuple[str, Counter[str]]:
        counts: Counter[str] = Counter()
        for kind, pattern in self._compiled:

            def replace(match: re.Match[str], kind: str = kind) -> str:
                if kind == "CARD_NUMBER" and not _is_card_number(match.group(0)):
                    return match.group(0)
                counts[kind] += 1
                prefix = match.group(1) if kind == "AWS_SECRET_KEY" else ""
                return f"{prefix}<{kind}>"

            text = pattern.sub(replace, text)
        return text, counts

    def redact_messages(
        self, messages: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """Messages with every string ``content`` redacted, and the counts by kind."""
        total: Counter[str] = Counter()
        redacted: list[dict[str, Any]] = []
        for message in messages:
            copy = dict(message)
            if isinstance(copy.get("content"), str):
                copy["content"], counts = self.redact_text(copy["content"])
                total.update(counts)
            redacted.append(copy)
        return redacted, dict(total)


def _is_card_number(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    return 13 <= len(digits) <= 19 and _luhn_ok(digits)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def parse_kinds(spec: str | Iterable[str]) -> tuple[str, ...]:
    """Kinds from a comma list such as ``"EMAIL,PHONE"``; ``"all"`` or empty means every kind."""
    items = [s.strip().upper() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    items = [s for s in items if s]
    if not items or items == ["ALL"]:
        return tuple(PATTERNS)
    if items == ["NONE"]:
        return ()
    return tuple(items)
