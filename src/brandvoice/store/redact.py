"""Redaction of secrets and personal data before anything is stored or leaves the machine.

Each match is replaced by a typed placeholder (``<EMAIL>``, ``<SLACK_TOKEN>``...) and counted, so
an example records what was removed without keeping it.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Order matters: specific secrets before the generic shapes they could also match.
PATTERNS: dict[str, str] = {
    "PRIVATE_KEY": r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    "SLACK_TOKEN": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    "API_KEY": r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}",
    "AWS_ACCESS_KEY": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "AWS_SECRET_KEY": r"(?i:(?<=aws_secret_access_key)\s*[=:]\s*)[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
    "EMAIL": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
    "CARD_NUMBER": r"\b(?:\d[ -]?){12,18}\d\b",
    "PHONE": r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)|\d{2,4})[\s.-]\d{3,4}[\s.-]\d{3,4}\b",
}


_DIGIT_RUN = re.compile(r"\d[\d\s().+-]{5,}\d")
_HINTS = {
    "PRIVATE_KEY": lambda text, _: "PRIVATE KEY-----" in text,
    "SLACK_TOKEN": lambda text, _: "xox" in text,
    "API_KEY": lambda text, _: "sk-" in text,
    "AWS_ACCESS_KEY": lambda text, _: "AKIA" in text or "ASIA" in text,
    "AWS_SECRET_KEY": lambda text, _: "ws_secret_access_key" in text.lower(),
    "EMAIL": lambda text, _: "@" in text,
    "CARD_NUMBER": lambda _, digits: digits,
    "PHONE": lambda _, digits: digits,
}
"""Cheap tests that a kind could occur at all, so most texts never run the full expressions."""


@functools.lru_cache(maxsize=256)
def _alternation(kinds: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?P<{kind}>{PATTERNS[kind]})" for kind in kinds))


@dataclass(frozen=True)
class Redactor:
    """The enabled kinds as one alternation, so each text is scanned once; ``Redactor()`` enables all."""

    kinds: tuple[str, ...] = tuple(PATTERNS)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(PATTERNS)
        if unknown:
            raise ValueError(
                f"unknown redaction kinds {sorted(unknown)}; known: {', '.join(PATTERNS)}"
            )

    def redact_text(self, text: str) -> tuple[str, Counter[str]]:
        counts: Counter[str] = Counter()
        digits = bool(_DIGIT_RUN.search(text))
        candidates = tuple(k for k in PATTERNS if k in self.kinds and _HINTS[k](text, digits))
        if not candidates:
            return text, counts

        def replace(match: re.Match[str]) -> str:
            kind = match.lastgroup or ""
            found = match.group(0)
            if kind == "CARD_NUMBER" and not _is_card_number(found):
                return found
            counts[kind] += 1
            if kind == "AWS_SECRET_KEY":  # keep the "aws_secret_access_key = " part
                return found[: len(found) - 40] + f"<{kind}>"
            return f"<{kind}>"

        return _alternation(candidates).sub(replace, text), counts

    def redact_messages(
        self, messages: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """Messages with every string that is stored redacted, and the counts by kind.

        That is the content, the speaker's ``name`` and function and tool-call names and arguments:
        a secret in any of them would reach the store and the model otherwise.
        """
        total: Counter[str] = Counter()

        def clean(value: Any) -> Any:
            if isinstance(value, str):
                text, counts = self.redact_text(value)
                total.update(counts)
                return text
            return value

        def clean_function(call: Any) -> Any:
            if not isinstance(call, Mapping):
                return call
            return {k: clean(v) if k in ("name", "arguments") else v for k, v in call.items()}

        redacted: list[dict[str, Any]] = []
        for message in messages:
            copy = dict(message)
            for key in ("content", "name"):
                if key in copy:
                    copy[key] = clean(copy[key])
            if "function_call" in copy:
                copy["function_call"] = clean_function(copy["function_call"])
            if isinstance(copy.get("tool_calls"), list):
                copy["tool_calls"] = [
                    {**call, "function": clean_function(call.get("function"))}
                    if isinstance(call, Mapping) and "function" in call
                    else call
                    for call in copy["tool_calls"]
                ]
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
