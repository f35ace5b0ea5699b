"""Redaction of secrets and personal data before anything is stored or leaves the machine.

Each match is replaced by a typed placeholder (``<EMAIL>``, ``<SLACK_TOKEN>``...) and counted, so
an example records what was removed without keeping it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from brandvoice.store.redact_rules import KEPT, KINDS, RULES, SHAPE, ZERO_WIDTH

ALLOWED = "allowed"
"""Key of an example's ``redactions`` that counts matches kept because ``REDACT_ALLOW`` lists them."""

_UNHIDE = str.maketrans(
    {"＠": "@", "﹫": "@", "．": ".", "。": ".", **dict.fromkeys(ZERO_WIDTH, "")}
)
_SPELLED = re.compile(r"\s*[\[\(\{<]\s*(at|dot)\s*[\]\)\}>]\s*|\s+", re.IGNORECASE)


class RedactionCounts(dict[str, int]):
    """Redactions by kind; ``allowed`` counts the matches kept because the allow list names them.

    A plain dict (not a Counter): one is made per text, and most texts have nothing to count.
    """

    __slots__ = ("allowed",)

    def __init__(self) -> None:
        super().__init__()
        self.allowed: dict[str, int] = {}


def canonical(kind: str, found: str) -> str:
    """The value behind its disguise: ``bob [at] example [dot] com`` -> ``bob@example.com``."""
    text = found.translate(_UNHIDE)
    if kind == "EMAIL":
        spelled = {"at": "@", "dot": "."}
        text = _SPELLED.sub(lambda m: spelled.get((m.group(1) or "").lower(), ""), text)
    if kind == "PHONE":
        return re.sub(r"\D", "", text)
    return text.strip().casefold()


@dataclass(frozen=True)
class AllowList:
    """Public contact points never to redact: whole domains (and their subdomains) and exact values."""

    domains: frozenset[str] = frozenset()
    values: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, spec: str | Iterable[str]) -> AllowList:
        """From ``REDACT_ALLOW``: ``yourbrand.example, +1 415 555 0100, help@partner.example``."""
        items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
        domains, values, phones = set(), set(), set()
        for item in filter(None, items):
            digits = re.sub(r"\D", "", item)
            if len(digits) >= 7 and re.fullmatch(r"[\d\s().+-]+", item):
                phones.add(digits)
            elif "@" not in item and re.fullmatch(r"@?[\w-]+(?:\.[\w-]+)+", item):
                domains.add(item.lstrip("@").casefold())
            else:
                values.add(canonical("EMAIL" if "@" in item else "", item))
        return cls(frozenset(domains), frozenset(values), frozenset(phones))

    def __bool__(self) -> bool:
        return bool(self.domains or self.values or self.phones)

    def allows(self, kind: str, found: str) -> bool:
        value = canonical(kind, found)
        if kind == "PHONE":
            return any(
                value == phone
                or (
                    min(len(value), len(phone)) >= 9
                    and (value.endswith(phone) or phone.endswith(value))
                )
                for phone in self.phones
            )
        if value in self.values:
            return True
        if kind == "EMAIL":
            domain = value.rpartition("@")[2]
            return any(domain == d or domain.endswith("." + d) for d in self.domains)
        return False


@functools.lru_cache(maxsize=256)
def _alternation(rule_indexes: tuple[int, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?P<r{i}>{RULES[i].pattern})" for i in rule_indexes))


@dataclass(frozen=True)
class Redactor:
    """The enabled rules as one alternation, so each text is scanned once; ``Redactor()`` enables all.

    ``allow`` lists the team's own public contact points (``REDACT_ALLOW``), kept everywhere.
    """

    kinds: tuple[str, ...] = KINDS
    allow: AllowList = field(default_factory=AllowList)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(
                f"unknown redaction kinds {sorted(unknown)}; known: {', '.join(KINDS)}"
            )

    @functools.cached_property
    def _triggers(self) -> tuple[tuple[tuple[str, tuple[int, ...]], ...], tuple[int, ...]]:
        """The enabled rules' keywords with the rules each one wakes up, and the rules without
        keywords (woken by ``SHAPE``). A substring test per keyword is faster than one regex
        alternation of them, and sees keywords that overlap (``secret`` in ``secret_access_key``)."""
        rules: dict[str, list[int]] = {}
        for index, rule in enumerate(RULES):
            if rule.kind in self.kinds:
                for word in rule.keywords:
                    rules.setdefault(word, []).append(index)
        shaped = tuple(i for i, r in enumerate(RULES) if r.kind in self.kinds and not r.keywords)
        return tuple((word, tuple(indexes)) for word, indexes in rules.items()), shaped

    def _rules_for(self, text: str) -> tuple[int, ...]:
        keywords, shaped = self._triggers
        lowered = text.lower()
        chosen = {i for word, indexes in keywords if word in lowered for i in indexes}
        if shaped and SHAPE.search(text) is not None:
            chosen.update(shaped)
        return tuple(sorted(chosen))

    def redact_text(self, text: str) -> tuple[str, RedactionCounts]:
        counts = RedactionCounts()
        return self._redact_into(text, counts), counts

    def _redact_into(self, text: str, counts: RedactionCounts, *, keyed_only: bool = False) -> str:
        """``text`` redacted, adding what was found to ``counts``; ``keyed_only`` leaves out the
        rules woken by shape (used on a named value, where they would only mislabel it)."""
        candidates = self._rules_for(text)
        if keyed_only:
            candidates = tuple(i for i in candidates if RULES[i].keywords)
        if not candidates:
            return text

        def replace(match: re.Match[str]) -> str:
            rule = RULES[int((match.lastgroup or "r0")[1:])]
            found = match.group(0)
            kept = ""
            if rule.keep_prefix:
                kept = found[: KEPT.match(found).end()]  # type: ignore[union-attr]
                value = found[len(kept) :]
                named = self._redact_into(value, counts, keyed_only=True)
                if named != value:
                    return kept + named
            if rule.check is not None and not rule.check(found, text, match.start()):
                return kept + self._redact_into(found[len(kept) :], counts) if kept else found
            if self.allow and self.allow.allows(rule.kind, found[len(kept) :]):
                counts.allowed[rule.kind] = counts.allowed.get(rule.kind, 0) + 1
                return found
            counts[rule.kind] = counts.get(rule.kind, 0) + 1
            return f"{kept}<{rule.kind}>"

        return _alternation(candidates).sub(replace, text)

    def redact_messages(
        self, messages: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], RedactionCounts]:
        """Messages with every string that is stored redacted, and the counts by kind.

        That is the content, the speaker's ``name`` and function and tool-call names and arguments:
        a secret in any of them would reach the store and the model otherwise.
        """
        total = RedactionCounts()

        def clean(value: Any) -> Any:
            return self._redact_into(value, total) if isinstance(value, str) else value

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
        return redacted, total


def parse_kinds(spec: str | Iterable[str]) -> tuple[str, ...]:
    """Kinds from a comma list such as ``"EMAIL,PHONE"``; ``"all"`` or empty means every kind."""
    items = [s.strip().upper() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    items = [s for s in items if s]
    if not items or items == ["ALL"]:
        return KINDS
    if items == ["NONE"]:
        return ()
    return tuple(items)
