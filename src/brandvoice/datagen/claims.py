"""Unsupported claims in a reply: a deterministic check that needs no judge model.

Fine-tuning teaches a voice, not facts, so a tuned model may invent a number, a promise or an
attribute. A reply is checked against its sources (the reference reply, the prompt it answered,
retrieved knowledge, the brand guidelines), and a claim is flagged when no source supports it:

- **Quantities.** Prices, percentages, durations, dates and other numbers in the reply must appear
  in some source with the same value and kind. Forms are normalised first: "60 days" = "sixty days"
  = "60-day", "two weeks" = "14 days", "$20" = "20 dollars", "10%" = "10 percent",
  "March 3" = "3rd March". Number words count only before a unit ("the one I bought" is no claim).
- **Promises and policies.** A promise phrase (free X, for life / lifetime, guarantee, refund,
  replacement, no questions asked, discount, warranty) is supported only when one source sentence
  holds all its key terms: "a free tent for life" needs a sentence with both "free" and "tent",
  so "repairs are free for life" does not support it. Terms match on a shared prefix
  ("refund" / "refunded", "life" / "lifetime").
- **Flips.** An attribute the reply affirms (waterproof, in stock, free, available, included,
  refundable, "can <verb>") is flagged when a source states its opposite ("not waterproof",
  "water-resistant", "out of stock", "paid", "can't <verb>") and no source affirms it; and the
  reverse for an attribute the reply denies. Questions, direct or indirect, are never a source
  of polarity: "Is it waterproof?" and "asks if we can ship" affirm nothing.

The check errs towards silence: a quantity or promise found anywhere in the sources passes, so it
misses claims the sources happen to mention elsewhere, but what it flags is absent or contradicted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """A claim in a reply that no source supports."""

    text: str
    """The words of the reply that make the claim."""
    kind: str
    """``quantity``, ``promise`` or ``flip`` (``judge`` when a judge model found it)."""
    reason: str


_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_WORD = (
    rf"(?:(?:{'|'.join(_TENS)})(?:[\s-](?:{'|'.join(k for k in _UNITS if k != 'zero')}))?"
    rf"|{'|'.join(sorted(_UNITS, key=len, reverse=True))}|a\s+hundred|hundred)"
)
_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUM = rf"(?P<num>{_DIGITS}|{_WORD})"
_DURATION_UNITS = {
    "minute": ("hour", 1 / 60), "hour": ("hour", 1), "day": ("day", 1), "week": ("day", 7),
    "month": ("month", 1), "year": ("month", 12),
}  # fmt: skip
_MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
]  # fmt: skip
_MONTH = r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_WEEKDAY = r"(?P<weekday>monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_B = r"(?<![\w.])"
_E = r"(?![\w])"

_QUANTITY_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("price", re.compile(rf"[$€£]\s?(?P<num>{_DIGITS}){_E}")),
    ("price", re.compile(rf"{_B}{_NUM}\s*(?:dollars?|bucks|usd|euros?|eur|pounds?|gbp){_E}")),
    ("percentage", re.compile(rf"{_B}{_NUM}\s*(?:%|percent{_E}|per\s+cent{_E})")),
    (
        "duration",
        re.compile(
            rf"{_B}{_NUM}[\s-]*(?:(?:business|working|calendar)[\s-]+)?"
            rf"(?P<unit>minute|hour|day|week|month|year)s?{_E}"
        ),
    ),
    ("date", re.compile(rf"{_B}\d{{4}}-\d{{2}}-\d{{2}}{_E}")),
    ("date", re.compile(rf"{_B}{_MONTH}\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?{_E}")),
    (
        "date",
        re.compile(rf"{_B}(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}{_E}"),
    ),
    ("date", re.compile(rf"{_B}{_WEEKDAY}s?{_E}")),
    ("number", re.compile(rf"{_B}(?P<num>{_DIGITS}){_E}")),
]


_NUMBER_WORD = re.compile(rf"{_B}{_WORD}{_E}")


def _number(text: str) -> float:
    words = re.split(r"[\s-]+", text.strip().lower())
    if words[0] in _TENS or words[0] in _UNITS or words[-1] == "hundred":
        if words[-1] == "hundred":
            return 100.0
        return float(sum(_TENS.get(w, 0) + _UNITS.get(w, 0) for w in words))
    return float(text.replace(",", ""))


@dataclass(frozen=True)
class _Quantity:
    kind: str
    key: tuple[object, ...]
    text: str
    value: float | None


def _quantities(text: str) -> list[_Quantity]:
    """Every quantity in ``text``, longest reading first; a span is read once."""
    lowered = text.lower()
    taken: list[tuple[int, int]] = []
    found = []
    for kind, pattern in _QUANTITY_PATTERNS:
        for match in pattern.finditer(lowered):
            start, end = match.span()
            if any(start < e and s < end for s, e in taken):
                continue
            taken.append((start, end))
            groups = match.groupdict()
            value = _number(groups["num"]) if groups.get("num") else None
            if kind == "duration":
                base, factor = _DURATION_UNITS[groups["unit"]]
                key: tuple[object, ...] = (round((value or 0) * factor, 4), base)
            elif kind == "date":
                if groups.get("weekday"):
                    key = (groups["weekday"],)
                elif groups.get("month"):
                    month = next(m for m in _MONTHS if m.startswith(groups["month"][:3]))
                    key = (month, int(groups["day"]))
                else:
                    key = (match.group(0),)
            else:
                key = (value,)
            found.append(_Quantity(kind, key, text[start:end].strip(), value))
    return found


def _quantity_claims(reply: str, sources: Sequence[str]) -> list[Claim]:
    known = [q for source in sources for q in _quantities(source)]
    kinds = {(q.kind, q.key) for q in known}
    values = {q.value for q in known if q.value is not None}
    values.update(
        _number(m.group(0)) for source in sources for m in _NUMBER_WORD.finditer(source.lower())
    )
    claims = []
    for q in _quantities(reply):
        supported = q.value in values if q.kind == "number" else (q.kind, q.key) in kinds
        if not supported:
            claims.append(Claim(q.text, "quantity", f"the {q.kind} '{q.text}' is in no source"))
    return claims


_SKIPPED = frozenset(
    {
        "a", "an", "the", "of", "for", "to", "on", "in", "our", "your", "my", "all", "any", "and",
        "or", "with", "at", "by", "it", "its", "this", "that", "is", "are", "be", "we", "you", "i",
        "us", "get", "got", "one", "new", "full", "whole", "over", "under", "from", "up", "second",
        "extra", "brand",
    }
)  # fmt: skip
"""Words between "free" and what it promises ("a free brand new pack", "for free at the store")."""
_CLAUSE_WORDS = frozenset(
    {
        "within", "while", "instead", "until", "unless", "because", "since", "so", "but", "now",
        "today", "too", "again", "anyway", "once", "after", "before", "during", "through",
        "either", "also", "forever", "here", "there", "if", "when", "as", "charge", "cost",
    }
)  # fmt: skip


def _free_thing(after: str) -> list[str]:
    """What "free" promises, from the words after it in its clause: the noun of "a free tent",
    "free express shipping" or "for free at the store"; nothing where the clause moves on
    ("exchanges are free within 60 days", "we'll fix it for free instead", "free of charge"), so
    any source that says something is free supports it."""
    clause = re.split(r"[.,;:!?()\n]", after, maxsplit=1)[0]
    for word in _words(clause)[:3]:
        if word in _CLAUSE_WORDS or word.isdigit():
            return []
        if word not in _SKIPPED:
            return [word]
    return []


_PROMISES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?<!feel )(?<![\w-])free(?![\w-])(?!\s+to\b)"), "free"),
    (re.compile(r"\bfor\s+life\b|\blifetime\b|\bforever\b"), "life"),
    (re.compile(r"\bguarantee[ds]?\b"), "guarantee"),
    (re.compile(r"\brefund(?:s|ed|ing)?\b"), "refund"),
    (re.compile(r"\breplace(?:ment|ments|d|s)?\b"), "replace"),
    (re.compile(r"\bno\s+questions\s+asked\b"), "questions"),
    (re.compile(r"\bdiscount(?:s|ed)?\b|\d\s*%\s+off\b"), "discount"),
    (re.compile(r"\bwarrant(?:y|ies)\b"), "warrant"),
]


def excerpt(text: str, start: int = 0, length: int = 160) -> str:
    """``length`` characters of ``text`` from ``start``, cut at a word, with an ellipsis if cut."""
    piece = text[start : start + length]
    if start + length < len(text):
        piece = piece.rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return piece.strip()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def _same_term(a: str, b: str) -> bool:
    shorter, longer = sorted((a, b), key=len)
    return shorter == longer or (len(shorter) >= 4 and longer.startswith(shorter))


def _holds_all(sentence: list[str], terms: Iterable[str]) -> bool:
    return all(any(_same_term(term, word) for word in sentence) for term in terms)


_SOURCE_SYNONYMS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"\b(?:at no (?:extra |additional )?(?:cost|charge)|free of charge|without charge"
            r"|on the house|complimentary)\b",
            re.IGNORECASE,
        ),
        "free",
    ),
    (re.compile(r"\b(?:a|one) new (?:one|pair)\b", re.IGNORECASE), "a replacement"),
]
"""Plain words a source may use for a promise term: "we'll send a new one at no cost to you"
supports "we'll ship a free replacement"."""


def _promise_terms(sentence: str) -> list[str]:
    for pattern, term in _SOURCE_SYNONYMS:
        sentence = pattern.sub(term, sentence)
    return _words(sentence)


def _promise_claims(reply: str, sources: Sequence[str]) -> list[Claim]:
    source_sentences = [_promise_terms(s) for source in sources for s in _sentences(source)]
    claims = []
    seen = set()
    for sentence in _sentences(reply):
        lowered = sentence.lower()
        for pattern, term in _PROMISES:
            for match in pattern.finditer(lowered):
                terms = [term]
                if term == "free":
                    terms += _free_thing(lowered[match.end() :])
                key = tuple(terms)
                if key in seen:
                    continue
                seen.add(key)
                if not any(_holds_all(s, terms) for s in source_sentences):
                    claims.append(
                        Claim(
                            excerpt(sentence, match.start(), 40),
                            "promise",
                            f"no source sentence promises {' + '.join(repr(t) for t in terms)}",
                        )
                    )
    return claims


_NEGATORS = frozenset(
    {
        "not", "no", "never", "without", "nor", "cannot", "cant", "isnt", "arent", "wasnt", "werent",
        "dont", "doesnt", "didnt", "wont", "hasnt", "havent", "aint", "shouldnt",
    }
)  # fmt: skip


@dataclass(frozen=True)
class _Attribute:
    name: str
    affirm: re.Pattern[str]
    opposite: re.Pattern[str]


def _attribute(name: str, affirm: str, opposite: str) -> _Attribute:
    return _Attribute(name, re.compile(affirm), re.compile(opposite))


_ATTRIBUTES = [
    _attribute(
        "waterproof",
        r"(?<![\w-])waterproof(?![\w-])",
        r"\bwater[\s-]?(?:resistant|repellent)\b",
    ),
    _attribute("in stock", r"\bin\s+stock\b", r"\bout\s+of\s+stock\b|\bsold\s+out\b|\bback-?order"),
    _attribute(
        "free",
        r"(?<!feel )(?<![\w-])free(?![\w-])(?!\s+to\b)",
        r"\bpaid\s+(?:upgrade|option|add-?on|extra|service)\b|\bcosts?\s+extra\b"
        r"|\bextra\s+(?:charge|cost|fee)\b|\bfor\s+a\s+fee\b",
    ),
    _attribute("available", r"(?<![\w-])available\b", r"\bunavailable\b|\bdiscontinued\b"),
    _attribute("included", r"\bincluded\b", r"\bsold\s+separately\b"),
    _attribute("refundable", r"(?<![\w-])refundable\b", r"\bnon-?refundable\b"),
]
_CAN = re.compile(r"\b(?P<modal>can(?:'|’)?t|cannot|can\s+not|can)\s+(?:\w+ly\s+)?(?P<verb>[a-z]+)")


def _asked(text: str, start: int) -> bool:
    """Whether the words before ``start`` make it a question ("asks if we can ship")."""
    before = re.findall(r"[\w'’]+", re.split(r"[,;:.!?]", text[:start])[-1])[-4:]
    return any(w in {"if", "whether"} for w in before)


def _negated(text: str, start: int) -> bool:
    before = re.split(r"[,;:.!?]", text[:start])[-1]
    words = [w.replace("'", "").replace("’", "") for w in re.findall(r"[\w'’]+", before)][-3:]
    return any(w in _NEGATORS for w in words)


def _polarities(text: str) -> dict[str, set[bool]]:
    """Per attribute, whether each statement affirms (True) or denies (False) it."""
    found: dict[str, set[bool]] = {}
    for sentence in _sentences(text.lower()):
        if sentence.rstrip().endswith("?"):
            continue
        for attribute in _ATTRIBUTES:
            for match in attribute.affirm.finditer(sentence):
                if not _asked(sentence, match.start()):
                    positive = not _negated(sentence, match.start())
                    found.setdefault(attribute.name, set()).add(positive)
            if attribute.opposite.search(sentence):
                found.setdefault(attribute.name, set()).add(False)
        for match in _CAN.finditer(sentence):
            if _asked(sentence, match.start()):
                continue
            positive = match.group("modal") == "can" and not _negated(sentence, match.start())
            found.setdefault(f"can {match.group('verb')}", set()).add(positive)
    return found


def _flip_claims(reply: str, sources: Sequence[str]) -> list[Claim]:
    stated: dict[str, set[bool]] = {}
    for source in sources:
        for name, polarities in _polarities(source).items():
            stated.setdefault(name, set()).update(polarities)
    claims = []
    for name, polarities in _polarities(reply).items():
        for positive in sorted(polarities, reverse=True):
            sources_say = stated.get(name, set())
            if (not positive) in sources_say and positive not in sources_say:
                said = name if positive else f"not {name}"
                opposite = f"not {name}" if positive else name
                claims.append(
                    Claim(said, "flip", f"the reply says '{said}' where a source says '{opposite}'")
                )
    return claims


def unsupported_claims(reply: str, sources: Sequence[str]) -> list[Claim]:
    """The claims of ``reply`` that no text in ``sources`` supports (see the module docstring)."""
    return [
        *_flip_claims(reply, sources),
        *_promise_claims(reply, sources),
        *_quantity_claims(reply, sources),
    ]
