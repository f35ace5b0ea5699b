"""Filters that flag, never delete: each candidate gets keep/drop, a reason and every filter's score.

Checks, in the order that decides the reason: format, redaction, refusal, repetition (a looping
small model), length, exact duplicate, near duplicate (ROUGE-L against every stored example,
validation ones included, and every candidate kept before it), on-topic band (embedding similarity
of what the strategy varied to its source: neither off-topic nor a copy), relevance (the reply
is about its request) and claims (the reply states no number, promise or attribute that neither
its conversation, its parent and demonstrations, the guidelines nor the knowledge support,
``datagen/claims.py``: a small model invents prices and policies, and training on them teaches
the bot to). Candidates are judged in order, so of two close candidates the first is kept and the
second is the near duplicate.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brandvoice.datagen.claims import unsupported_claims
from brandvoice.datagen.neardup import ROUGE_L_THRESHOLD, NearDupIndex
from brandvoice.store.examples import content_hash
from brandvoice.store.jsonl import TokenCounter
from brandvoice.store.redact import Redactor

Embedder = Callable[[Sequence[str]], np.ndarray]
"""Texts to L2-normalized vectors, one row each (``brandvoice.inference.embeddings.embed_texts``)."""

FILTER_ORDER = (
    "format",
    "redaction",
    "refusal",
    "repetition",
    "length",
    "exact_duplicate",
    "near_duplicate",
    "on_topic",
    "relevance",
    "claims",
)

DEFAULT_BANDS: Mapping[str, tuple[float, float]] = {
    "paraphrase": (0.55, 0.97),
    "reply_variation": (0.5, 0.98),
    "new_requests": (0.2, 0.9),
}
"""How similar what a strategy varied must stay to its source (see ``compared_texts``): a reworded
request to the parent's request, a rewritten reply to the parent's reply, a new exchange to the
closest of the parent and the demonstrations, which it should resemble in kind but not copy."""

REFUSAL_PATTERNS = tuple(
    re.compile(p, re.I)
    for p in (
        r"\bas an ai\b",
        r"\bas a (?:large )?language model\b",
        r"\bi(?: am|'m) (?:just )?an ai\b",
        r"\bi (?:cannot|can't|can ?not|am unable to|'m unable to|am not able to|won't be able to)"
        r" (?:help|assist|provide|answer|comply|fulfil|do that)",
        r"\bi(?:'m| am) sorry,? but i (?:cannot|can't|am unable|'m unable)",
        r"\bi (?:do not|don't) have (?:access to|the ability to|personal|real-time)",
        r"\bmy (?:training data|knowledge cutoff)\b",
        r"\b(?:openai|chatgpt)\b",
        r"\bhere(?:'s| is) (?:a|an|the|your) (?:rewritten|reworded|paraphrased|revised|new|updated)\b",
        r"^(?:sure|certainly|of course)\b[!,.]?\s*here(?:'s| is| are)\b",
        r"\bi hope this (?:message|email) finds you well\b",
    )
)
"""Refusals, assistant boilerplate, and meta-text about the rewriting itself."""
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class FilterConfig:
    min_tokens: int = 30
    """Whole example, counted as the store counts (system prompt included)."""
    max_tokens: int = 1024
    min_reply_words: int = 5
    max_repetition: float = 0.1
    """Share of a message's word trigrams that occur more than once. Approved replies of the
    sample brand stay under 0.05; a small model looping ("I'm sorry, I'm sorry...") goes far
    above."""
    near_duplicate: float = ROUGE_L_THRESHOLD
    bands: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_BANDS))
    default_band: tuple[float, float] = (0.2, 0.9)
    min_relevance: float = 0.2
    """Cosine of the reply with its own request; approved examples sit at 0.38 and up (5th
    percentile of the sample brand), unrelated answers below 0.2."""
    allow_redactions: bool = False
    """A generator that invents e-mail addresses or card numbers is making things up: drop."""
    allow_unsupported_claims: bool = False

    def band(self, strategy: str) -> tuple[float, float]:
        return self.bands.get(strategy, self.default_band)


@dataclass(frozen=True)
class FilterScore:
    passed: bool
    score: float
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "score": round(self.score, 4), "detail": self.detail}


@dataclass(frozen=True)
class Draft:
    """A parsed candidate and what it is judged against."""

    messages: list[dict[str, Any]]
    parent_messages: list[dict[str, Any]]
    strategy: str
    label: str = "a candidate"
    """How a later near duplicate names this one (e.g. ``parent 3 paraphrase #1``)."""
    references: tuple[list[dict[str, Any]], ...] = ()
    """Other examples it was made from (demonstrations); on-topic is the closest of these and
    the parent."""


@dataclass(frozen=True)
class Verdict:
    keep: bool
    reason: str | None
    detail: str
    scores: dict[str, FilterScore]
    score: float | None
    """Overall quality in [0, 1], higher is better: the mean of on-topic similarity, relevance
    and novelty (1 - the highest ROUGE-L); None when the candidate failed before it was scored."""
    messages: list[dict[str, Any]]
    """The redacted messages, as they would be stored."""
    content_hash: str | None = None

    def scores_dict(self) -> dict[str, dict[str, Any]]:
        return {name: score.as_dict() for name, score in self.scores.items()}


def conversation_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """What duplicates and topics are judged on: every non-system message, in order."""
    return "\n".join(
        str(m.get("content") or "") for m in messages if m.get("role") != "system"
    ).strip()


def last_content(messages: Sequence[Mapping[str, Any]], role: str) -> str:
    return next(
        (str(m.get("content") or "") for m in reversed(messages) if m.get("role") == role), ""
    )


def check_format(messages: Sequence[Mapping[str, Any]]) -> FilterScore:
    """Known roles, non-empty string contents, a user turn, and an assistant reply at the end."""
    roles = [m.get("role") for m in messages]
    if not messages or any(r not in ("system", "user", "assistant") for r in roles):
        return FilterScore(False, 0.0, f"roles must be system/user/assistant, got {roles}")
    if any(not isinstance(m.get("content"), str) or not m["content"].strip() for m in messages):
        return FilterScore(False, 0.0, "a message has empty or non-text content")
    if "user" not in roles or roles[-1] != "assistant":
        return FilterScore(False, 0.0, "needs a user message and an assistant reply last")
    return FilterScore(True, 1.0)


def check_refusal(messages: Sequence[Mapping[str, Any]]) -> FilterScore:
    hits = [
        match.group(0)
        for m in messages
        if m.get("role") != "system"
        for pattern in REFUSAL_PATTERNS
        if (match := pattern.search(str(m.get("content") or "")))
    ]
    return FilterScore(not hits, float(len(hits)), f"matched {hits[0]!r}" if hits else "")


def repetition(text: str, n: int = 3) -> float:
    """Share of the word ``n``-grams of ``text`` that occur more than once in it."""
    words = _WORD.findall(text.lower())
    grams = Counter(zip(*(words[i:] for i in range(n)), strict=False))
    total = sum(grams.values())
    return sum(c for c in grams.values() if c > 1) / total if total else 0.0


def check_repetition(messages: Sequence[Mapping[str, Any]], limit: float) -> FilterScore:
    share = max(
        (repetition(str(m.get("content") or "")) for m in messages if m.get("role") != "system"),
        default=0.0,
    )
    detail = "" if share <= limit else f"{share:.0%} of word trigrams repeat"
    return FilterScore(share <= limit, share, detail)


def check_length(tokens: int, reply: str, config: FilterConfig) -> FilterScore:
    words = len(reply.split())
    if not config.min_tokens <= tokens <= config.max_tokens:
        bounds = f"[{config.min_tokens}, {config.max_tokens}]"
        return FilterScore(False, float(tokens), f"{tokens} tokens, outside {bounds}")
    if words < config.min_reply_words:
        return FilterScore(False, float(tokens), f"reply has {words} words")
    return FilterScore(True, float(tokens))


class CandidateFilter:
    """Judges candidates against the stored examples and against each other, in order.

    ``existing``: (key, messages) of every stored example, validation ones included. Kept
    candidates join the exact and near-duplicate sets, so later ones are judged against them.
    ``sources``: what any reply may state besides its own conversation (the guidelines and the
    knowledge, ``datagen.guidelines.claim_sources``).
    """

    def __init__(
        self,
        existing: Iterable[tuple[Any, Sequence[Mapping[str, Any]]]],
        *,
        count_tokens: TokenCounter,
        embed: Embedder,
        config: FilterConfig | None = None,
        redactor: Redactor | None = None,
        sources: Sequence[str] = (),
    ) -> None:
        self.config = config or FilterConfig()
        self.sources = list(sources)
        self.count_tokens = count_tokens
        self.embed = embed
        self.redactor = redactor or Redactor()
        self.neardup = NearDupIndex(self.config.near_duplicate)
        self.hashes: set[str] = set()
        items = list(existing)
        for _, messages in items:
            self.hashes.add(content_hash(messages))
        self.neardup.add_many((("example", key), conversation_text(m)) for key, m in items)
        self._kept = 0

    def judge(self, drafts: Sequence[Draft]) -> list[Verdict]:
        """Verdicts in order; the batch shares one token count, one embedding and one sketch call."""
        redacted = [self.redactor.redact_messages(d.messages) for d in drafts]
        formats = [check_format(messages) for messages, _ in redacted]
        ok = [i for i, f in enumerate(formats) if f.passed]
        ok_messages = [redacted[i][0] for i in ok]
        tokens = self.count_tokens(ok_messages)
        similarity, relevance = self._similarities([drafts[i] for i in ok], ok_messages)
        prepared = self.neardup.prepare([conversation_text(m) for m in ok_messages])
        measured = {
            i: (tokens[k], prepared[k], similarity[k], relevance[k]) for k, i in enumerate(ok)
        }
        verdicts = []
        for i, draft in enumerate(drafts):
            messages, redactions = redacted[i]
            if i not in measured:
                scores = {"format": formats[i]}
                verdicts.append(Verdict(False, "format", formats[i].detail, scores, None, messages))
                continue
            verdicts.append(self._judge_one(draft, messages, redactions, *measured[i]))
        return verdicts

    def _judge_one(
        self,
        draft: Draft,
        messages: list[dict[str, Any]],
        redactions: dict[str, int],
        tokens: int,
        prepared: Any,
        similarity: float,
        relevance: float,
    ) -> Verdict:
        config = self.config
        digest = content_hash(messages)
        closest = self.neardup.best_match(prepared)
        rouge = closest.score if closest else 0.0
        low, high = config.band(draft.strategy)
        n_redacted = sum(redactions.values())
        scores = {
            "format": FilterScore(True, 1.0),
            "redaction": FilterScore(
                config.allow_redactions or not n_redacted,
                float(n_redacted),
                ", ".join(f"{k}×{n}" for k, n in sorted(redactions.items())),
            ),
            "refusal": check_refusal(messages),
            "repetition": check_repetition(messages, config.max_repetition),
            "length": check_length(tokens, last_content(messages, "assistant"), config),
            "exact_duplicate": FilterScore(
                digest not in self.hashes, 1.0 if digest in self.hashes else 0.0
            ),
            "near_duplicate": FilterScore(
                rouge <= config.near_duplicate,
                rouge,
                f"ROUGE-L {rouge:.2f} with {_describe(closest.key)}" if closest else "",
            ),
            "on_topic": FilterScore(
                low <= similarity <= high,
                similarity,
                "" if low <= similarity <= high else f"outside [{low}, {high}]",
            ),
            "relevance": FilterScore(relevance >= config.min_relevance, relevance),
            "claims": self._check_claims(draft, messages),
        }
        failed = next((name for name in FILTER_ORDER if not scores[name].passed), None)
        overall = float(np.clip((similarity + relevance + (1.0 - rouge)) / 3.0, 0.0, 1.0))
        if failed is None:
            self._kept += 1
            self.hashes.add(digest)
            self.neardup.add(("candidate", self._kept, draft.label), prepared)
        detail = scores[failed].detail if failed else ""
        return Verdict(failed is None, failed, detail, scores, overall, messages, digest)

    def _check_claims(self, draft: Draft, messages: list[dict[str, Any]]) -> FilterScore:
        """Claims of the reply that nothing it was made from supports: its own conversation, the
        parent and demonstrations, the guidelines and knowledge."""
        sources = [
            *(str(m.get("content") or "") for m in messages[:-1]),
            *(conversation_text(m) for m in (draft.parent_messages, *draft.references)),
            *self.sources,
        ]
        found = unsupported_claims(last_content(messages, "assistant"), sources)
        detail = f"{found[0].text!r}: {found[0].reason}" if found else ""
        return FilterScore(
            self.config.allow_unsupported_claims or not found, float(len(found)), detail
        )

    def _similarities(
        self, drafts: Sequence[Draft], messages: Sequence[list[dict[str, Any]]]
    ) -> tuple[list[float], list[float]]:
        """Cosine of what each strategy varied to where it came from (its closest source), and of
        each reply to its own request."""
        if not drafts:
            return [], []
        n = len(drafts)
        pairs = [compared_texts(d, m) for d, m in zip(drafts, messages, strict=True)]
        source_texts = list(dict.fromkeys(text for _, sources in pairs for text in sources))
        texts = (
            [varied for varied, _ in pairs]
            + [last_content(m, "user") for m in messages]
            + [last_content(m, "assistant") for m in messages]
            + source_texts
        )
        vectors = np.asarray(self.embed(texts), dtype=np.float32)
        varied, requests, replies = (vectors[k * n : (k + 1) * n] for k in range(3))
        row = {text: vectors[3 * n + i] for i, text in enumerate(source_texts)}
        similarity = [max(float(varied[i] @ row[text]) for text in pairs[i][1]) for i in range(n)]
        relevance = np.einsum("ij,ij->i", requests, replies)
        return similarity, [float(x) for x in relevance]


def compared_texts(draft: Draft, messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """(what the strategy varied, the texts it came from) for the on-topic band.

    A paraphrase changes the request, a reply variation the reply; anything else (a new request
    and its answer) is the whole conversation against the parent and the demonstrations.
    """
    parent = draft.parent_messages
    if draft.strategy == "paraphrase":
        return last_content(messages, "user"), [last_content(parent, "user")]
    if draft.strategy == "reply_variation":
        return last_content(messages, "assistant"), [last_content(parent, "assistant")]
    sources = [conversation_text(m) for m in (parent, *draft.references)]
    return conversation_text(messages), sources


def _describe(key: Any) -> str:
    return f"example {key[1]}" if key[0] == "example" else f"candidate {key[2]} of this run"
