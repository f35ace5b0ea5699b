"""Evaluation of a candidate against production and a few-shot base, in one report.

The report (:class:`~brandvoice.trainer.eval_report.EvalReport`) holds validation loss and
forgetting (where the models can score tokens, see ``inference.scoring``), voice similarity to the reference replies,
head-to-head win rates (an LLM judge asked in both orders when configured, otherwise the reply
closer to the reference), exact match on label-like references, forgetting on general text,
unsupported claims (``datagen.claims``: numbers, promises and attribute flips that neither the
reference, the prompt nor the given knowledge supports), side-by-side samples and a verdict that
recommends promotion only when the candidate beats production and nothing regresses past the
thresholds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brandvoice.datagen.claims import Claim, excerpt, unsupported_claims
from brandvoice.inference.chat import ChatBackend, Sampling
from brandvoice.inference.reply_cache import ReplyCache
from brandvoice.inference.scoring import (
    ScoringNotSupported,
    TargetScorer,
    mean_token_nll,
    target_scorer,
)
from brandvoice.trainer.eval_report import (
    ClaimExample,
    ClaimRate,
    ContenderLabels,
    ContenderScores,
    EvalReport,
    Sample,
    UnsupportedClaims,
    ValidationLoss,
    Verdict,
    WinRates,
)
from brandvoice.trainer.sft_data import TokenizedExample, read_chat_jsonl, tokenize_chat_file

Messages = list[dict[str, Any]]
Similarity = Callable[[Sequence[str], Sequence[str]], list[float]]
"""Cosine similarity of paired texts (``brandvoice.inference.embeddings.cosine_similarity``)."""


@dataclass(frozen=True)
class EvalConfig:
    max_examples: int = 24
    """Validation examples generated for (the loss uses all of them)."""
    max_new_tokens: int = 120
    samples: int = 3
    tie_margin: float = 0.01
    """Similarity difference under which two replies tie when no judge is configured."""
    label_max_words: int = 3
    """References this short are labels: scored by exact match."""
    max_val_loss_increase: float = 0.05
    """Relative validation-loss rise over production that still counts as no regression: the
    tie the trainer already grants a later adapter (``TrainConfig.select_tolerance``), since the
    voice keeps settling after the loss bottoms out. At 0.02 the gate refused a candidate whose
    loss rose 4.5% (on 8 of its 9 validation replies) while its voice rose 0.067 on the test split
    (``bench/loop_rounds.py`` round 3, sample brand)."""
    max_forgetting: float = 1.25
    """Highest allowed general-text perplexity of the candidate relative to the base."""
    min_win_rate: float = 0.5
    """The candidate must win more than this share against production."""
    min_extra_claim_replies: int = 2
    min_claim_rate_increase: float = 0.10
    """The candidate's unsupported claims are clearly worse than production's, and it is held,
    when it has at least this many more flagged replies and a rate at least this much higher
    (one stray reply, or a few on a large set, is noise)."""
    claim_examples: int = 3
    served_requests: int = 32
    """Recent requests the bot served that no example holds, answered by candidate and production
    for the claims check alone (it needs no reference): a validation split of a few prompts rarely
    provokes a claim, served traffic does. 32 is two generation batches (``GENERATION_BATCH``),
    about 45 s per model on 2 AMD EPYC cores with retrieved context. With 16,
    ``bench/loop_rounds.py`` round 2 promoted a candidate whose gate sample (4 of 23 replies with
    claims against production's 9) was reversed on the test split (4 against 1 of 24); with 32,
    on another machine, its 4 decisions were right (not a controlled comparison: the models
    differ between machines)."""


@dataclass
class Contender:
    """A model in the comparison: its label, its backend, and the demonstrations it is shown."""

    label: str
    backend: ChatBackend
    shots: list[Messages] = field(default_factory=list)
    """Demonstrations put before each prompt (the few-shot baseline)."""
    replies: ReplyCache | None = None
    """Where this model's greedy replies are kept, so an evaluation asks it only for new ones."""

    def prompt(self, conversation: Messages) -> Messages:
        system = [m for m in conversation[:1] if m["role"] == "system"]
        rest = conversation[len(system) :]
        demos = [m for shot in self.shots for m in shot if m["role"] != "system"]
        return [*system, *demos, *rest]

    def answer(self, conversations: Sequence[Messages], sampling: Sampling) -> list[str]:
        """Replies to ``conversations`` as this contender is asked them (after its shots)."""
        prompts = [self.prompt(c) for c in conversations]
        if self.replies is None:
            results = self.backend.complete_batch(prompts, sampling)
        else:
            results = self.replies.complete_batch(self.backend, prompts, sampling)
        return [r.text for r in results]


def split_reference(messages: Messages) -> tuple[Messages, str]:
    """The conversation up to the last assistant reply, and that reply."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


def is_label(text: str, max_words: int) -> bool:
    return 0 < len(text.split()) <= max_words


def normalize_label(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.casefold()).strip()


def pairwise_by_similarity(a: list[float], b: list[float], margin: float) -> list[float]:
    """Per example: 1 when A is closer to the reference, 0 when B is, 0.5 within the margin."""
    return [0.5 if abs(x - y) <= margin else float(x > y) for x, y in zip(a, b, strict=True)]


JUDGE_PROMPT = """You compare two replies written in a team's brand voice.
Conversation:
{conversation}

Reference reply (the team's own):
{reference}

Reply A:
{a}

Reply B:
{b}

Which reply is closer to the team's voice and answers better? Answer with JSON only:
{{"winner": "A"}}, {{"winner": "B"}} or {{"winner": "tie"}}."""


def parse_verdict(text: str) -> str | None:
    """'A', 'B' or 'tie' from a judge's answer (JSON or plain), None when unreadable."""
    try:
        value = json.loads(text).get("winner")
    except (json.JSONDecodeError, AttributeError):
        match = re.search(r"\b(A|B|tie)\b", text, flags=re.IGNORECASE)
        value = match.group(1) if match else None
    if not isinstance(value, str):
        return None
    value = value.strip()
    return "tie" if value.lower() == "tie" else value.upper() if value.upper() in "AB" else None


def judge_pairwise(
    judge: ChatBackend,
    prompts: list[Messages],
    references: list[str],
    first: list[str],
    second: list[str],
) -> list[float]:
    """Score of ``first`` per example, asking in both orders to cancel position bias.

    Agreement counts 1 or 0; a tie, a disagreement or an unreadable answer counts half.
    """

    def ask(a: list[str], b: list[str]) -> list[str | None]:
        requests = [
            [
                {
                    "role": "user",
                    "content": JUDGE_PROMPT.format(
                        conversation="\n".join(f"{m['role']}: {m['content']}" for m in prompt),
                        reference=reference,
                        a=x,
                        b=y,
                    ),
                }
            ]
            for prompt, reference, x, y in zip(prompts, references, a, b, strict=True)
        ]
        sampling = Sampling(temperature=0, max_tokens=20, json_output=judge.supports_json)
        return [parse_verdict(r.text) for r in judge.complete_batch(requests, sampling)]

    forward, backward = ask(first, second), ask(second, first)
    scores = []
    for one, two in zip(forward, backward, strict=True):
        points = {"A": 1.0, "tie": 0.5, "B": 0.0, None: 0.5}
        reverse = {"A": 0.0, "tie": 0.5, "B": 1.0, None: 0.5}
        scores.append((points[one] + reverse[two]) / 2)
    return scores


def assistant_token_loss(scorer: TargetScorer, val_path: Path, max_length: int) -> float:
    """Mean cross-entropy per assistant token of the validation set (the training objective)."""
    val = tokenize_chat_file(val_path, scorer.tokenizer, max_length)
    return mean_token_nll(scorer.score_targets(val.examples))


def text_perplexity(scorer: TargetScorer, texts: list[str], max_length: int = 256) -> float:
    """Perplexity of plain text, to see how much general language an adapter has forgotten."""
    examples = []
    for text in texts:
        ids = scorer.tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
        examples.append(TokenizedExample(ids, ids))
    return math.exp(mean_token_nll(scorer.score_targets(examples)))


CLAIMS_PROMPT = """You check a reply for claims that its sources do not support.
Sources (the only facts the reply may state):
{sources}

Reply:
{reply}

List each number, date, price, duration, promise or policy (refunds, free items, guarantees,
warranties) and product attribute in the reply that no source states or that a source
contradicts. Answer with JSON only: {{"unsupported": [{{"claim": "...", "reason": "..."}}]}},
with an empty list when the sources support everything."""


def parse_claims(text: str) -> list[Claim] | None:
    """The claims a judge listed, or None when its answer is unreadable."""
    try:
        found = json.loads(text)["unsupported"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(found, list):
        return None
    claims = []
    for item in found:
        if not isinstance(item, dict) or not isinstance(item.get("claim"), str):
            return None
        reason = item.get("reason")
        claims.append(Claim(item["claim"], "judge", reason if isinstance(reason, str) else "judge"))
    return claims


def judge_claims(
    judge: ChatBackend, replies: Sequence[str], sources: Sequence[Sequence[str]]
) -> list[list[Claim]]:
    """The judge's unsupported claims per reply; where its answer is unreadable, the
    deterministic check's (each reply is judged alone, so there is no order to swap)."""
    requests = [
        [
            {
                "role": "user",
                "content": CLAIMS_PROMPT.format(sources="\n---\n".join(texts), reply=reply),
            }
        ]
        for reply, texts in zip(replies, sources, strict=True)
    ]
    sampling = Sampling(temperature=0, max_tokens=300, json_output=judge.supports_json)
    answers = [parse_claims(r.text) for r in judge.complete_batch(requests, sampling)]
    return [
        found if found is not None else unsupported_claims(reply, texts)
        for found, reply, texts in zip(answers, replies, sources, strict=True)
    ]


def claim_rate(
    replies: Sequence[str], claims: Sequence[Sequence[Claim]], examples: int
) -> ClaimRate:
    """How many ``replies`` make at least one unsupported claim (``claims``, one list per reply),
    with the first flagged claim of up to ``examples`` of them."""
    flagged = [(reply, found[0]) for reply, found in zip(replies, claims, strict=True) if found]
    return ClaimRate(
        flagged=len(flagged),
        replies=len(replies),
        examples=[
            ClaimExample(reply=excerpt(reply), claim=first.text, reason=first.reason)
            for reply, first in flagged[:examples]
        ],
    )


CLAIMS_METHOD = (
    "deterministic: numbers, dates, prices, promises and attribute flips that no source states "
    "(sources: the reference reply, the prompt{extra}){served}"
)
JUDGE_CLAIMS_METHOD = (
    "judge {model}: claims it finds unsupported by the sources (the reference reply, the "
    "prompt{extra}){served}; the deterministic check where its answer was unreadable"
)


def _served_method_note(count: int) -> str:
    """How the claims method names the served requests it checked too."""
    return f"; also {count} recent served requests, which have no reference" if count else ""


def text_contents(messages: Messages) -> list[str]:
    return [m["content"] for m in messages if isinstance(m.get("content"), str)]


def claims_worse(claims: UnsupportedClaims, config: EvalConfig) -> str | None:
    """Why the candidate's unsupported claims are clearly worse than production's, or None."""
    cand, prod = claims.candidate, claims.production
    more = cand.flagged - prod.flagged
    higher = round(cand.rate - prod.rate, 9)
    if more >= config.min_extra_claim_replies and higher >= config.min_claim_rate_increase:
        return (
            f"makes unsupported claims in {cand.describe()} against production's "
            f"{prod.describe()}; clearly worse: at least {config.min_extra_claim_replies} more "
            f"flagged replies and a rate at least {round(config.min_claim_rate_increase * 100, 6):g} "
            "points higher"
        )
    return None


def verdict(
    *,
    win_rate: WinRates,
    voice_similarity: ContenderScores,
    val_loss: ValidationLoss | None,
    forgetting: float | None,
    config: EvalConfig,
    claims: UnsupportedClaims | None = None,
) -> Verdict:
    """Recommend promotion only when the candidate beats production and nothing regresses."""
    reasons = []
    win = win_rate.vs_production
    if win <= config.min_win_rate:
        reasons.append(
            f"wins only {win:.0%} against production (needs > {config.min_win_rate:.0%})"
        )
    if voice_similarity.candidate < voice_similarity.production:
        reasons.append(
            f"voice similarity fell from {voice_similarity.production:.3f} "
            f"to {voice_similarity.candidate:.3f}"
        )
    if val_loss is not None:
        limit = val_loss.production * (1 + config.max_val_loss_increase)
        if val_loss.candidate > limit:
            reasons.append(
                f"validation loss rose from {val_loss.production:.3f} to {val_loss.candidate:.3f}"
            )
    if forgetting is not None and forgetting > config.max_forgetting:
        reasons.append(
            f"general-text perplexity is {forgetting:.2f}x the base (limit {config.max_forgetting}x)"
        )
    worse = claims_worse(claims, config) if claims is not None else None
    if worse is not None:
        reasons.append(worse)
    return Verdict(recommend_promote=not reasons, reasons=reasons)


def evaluate(
    val_path: Path,
    candidate: Contender,
    production: Contender,
    baseline: Contender,
    similarity: Similarity,
    *,
    general_texts: list[str] | None = None,
    base: Contender | None = None,
    judge: ChatBackend | None = None,
    config: EvalConfig | None = None,
    max_length: int = 1024,
    progress: Callable[[str], None] | None = None,
    knowledge: Sequence[str] = (),
    served: Sequence[Messages] = (),
) -> EvalReport:
    """The evaluation report of ``candidate`` on the validation set.

    Each reply's claims are checked against its reference, its prompt and ``knowledge`` (the brand
    guidelines, the team's knowledge texts: what any reply may state). Candidate and production
    also answer ``served`` (prompts of requests the bot served, as it would render them now) for
    the claims check, against their prompt and ``knowledge``.

    Validation loss needs candidate and production to score tokens, forgetting the candidate and
    ``base``; where one cannot (a hosted model), the report says so in ``not_measured``.
    """
    config = config or EvalConfig()
    conversations = read_chat_jsonl(val_path)
    if not conversations:
        raise ValueError(f"{val_path} holds no validation examples to evaluate on")
    shown = conversations[: config.max_examples]
    prompts, references = zip(*(split_reference(m) for m in shown), strict=True)
    sampling = Sampling(temperature=0, max_tokens=config.max_new_tokens)
    contenders = {"candidate": candidate, "production": production, "baseline": baseline}
    replies: dict[str, list[str]] = {}
    for key, contender in contenders.items():
        if progress:
            progress(f"generating with {contender.label}")
        replies[key] = contender.answer(prompts, sampling)
    sims = {key: similarity(replies[key], list(references)) for key in contenders}
    if judge is not None:
        if progress:
            progress("judging")
        win_production = judge_pairwise(
            judge, list(prompts), list(references), replies["candidate"], replies["production"]
        )
        win_baseline = judge_pairwise(
            judge, list(prompts), list(references), replies["candidate"], replies["baseline"]
        )
    else:
        win_production = pairwise_by_similarity(
            sims["candidate"], sims["production"], config.tie_margin
        )
        win_baseline = pairwise_by_similarity(
            sims["candidate"], sims["baseline"], config.tie_margin
        )
    exact_match = exact_match_rates(replies, list(references), config.label_max_words)
    not_measured: list[str] = []
    val_loss = _validation_losses(
        candidate, production, val_path, max_length, not_measured, progress
    )
    forgetting = (
        _forgetting(candidate, base, general_texts, not_measured, progress)
        if general_texts and base is not None
        else None
    )
    checked = {key: list(replies[key]) for key in ("production", "candidate")}
    if served:
        if progress:
            progress("answering served requests")
        for key, answers in checked.items():
            answers.extend(contenders[key].answer(served, sampling))
    sources = [
        *(
            [reference, *text_contents(prompt), *knowledge]
            for prompt, reference in zip(prompts, references, strict=True)
        ),
        *([*text_contents(prompt), *knowledge] for prompt in served),
    ]
    extra = ", the given knowledge" if knowledge else ""
    if judge is not None:
        if progress:
            progress("checking claims")
        found = {key: judge_claims(judge, checked[key], sources) for key in checked}
        method = JUDGE_CLAIMS_METHOD.format(
            model=judge.model_name, extra=extra, served=_served_method_note(len(served))
        )
    else:
        found = {
            key: [unsupported_claims(r, texts) for r, texts in zip(answers, sources, strict=True)]
            for key, answers in checked.items()
        }
        method = CLAIMS_METHOD.format(extra=extra, served=_served_method_note(len(served)))
    claims = UnsupportedClaims(
        method=method,
        production=claim_rate(checked["production"], found["production"], config.claim_examples),
        candidate=claim_rate(checked["candidate"], found["candidate"], config.claim_examples),
        served_requests=len(served),
    )
    voice_similarity = ContenderScores(**{k: round(sum(v) / len(v), 4) for k, v in sims.items()})
    win_rate = WinRates(
        vs_production=round(sum(win_production) / len(win_production), 4),
        vs_baseline=round(sum(win_baseline) / len(win_baseline), 4),
    )
    return EvalReport(
        examples=len(shown),
        judge=judge.model_name if judge else "closer to reference",
        labels=ContenderLabels(
            candidate=candidate.label, production=production.label, baseline=baseline.label
        ),
        voice_similarity=voice_similarity,
        win_rate=win_rate,
        exact_match=exact_match,
        samples=[
            Sample(
                prompt=prompts[i][-1]["content"],
                reference=references[i],
                production=replies["production"][i],
                candidate=replies["candidate"][i],
            )
            for i in range(min(config.samples, len(shown)))
        ],
        val_loss=val_loss,
        forgetting=forgetting,
        not_measured=not_measured,
        unsupported_claims=claims,
        verdict=verdict(
            win_rate=win_rate,
            voice_similarity=voice_similarity,
            val_loss=val_loss,
            forgetting=forgetting,
            config=config,
            claims=claims,
        ),
    )


def exact_match_rates(
    replies: dict[str, list[str]], references: list[str], label_max_words: int
) -> ContenderScores | None:
    """Each contender's share of label-like references matched exactly; None without labels."""
    labels = [i for i, ref in enumerate(references) if is_label(ref, label_max_words)]
    if not labels:
        return None

    def rate(key: str) -> float:
        hits = sum(
            normalize_label(replies[key][i]) == normalize_label(references[i]) for i in labels
        )
        return round(hits / len(labels), 4)

    return ContenderScores(
        candidate=rate("candidate"), production=rate("production"), baseline=rate("baseline")
    )


def _validation_losses(
    candidate: Contender,
    production: Contender,
    val_path: Path,
    max_length: int,
    not_measured: list[str],
    progress: Callable[[str], None] | None,
) -> ValidationLoss | None:
    """Both models' validation loss, or None (noted in ``not_measured``) if one cannot score."""
    try:
        scorers = target_scorer(candidate.backend), target_scorer(production.backend)
    except ScoringNotSupported as exc:
        not_measured.append(f"validation loss: {exc}")
        return None
    if progress:
        progress("validation loss")
    losses = [round(assistant_token_loss(s, val_path, max_length), 4) for s in scorers]
    return ValidationLoss(candidate=losses[0], production=losses[1])


def _forgetting(
    candidate: Contender,
    base: Contender,
    general_texts: list[str],
    not_measured: list[str],
    progress: Callable[[str], None] | None,
) -> float | None:
    """General-text perplexity of the candidate ÷ the base's, or None if one cannot score."""
    try:
        scorers = target_scorer(candidate.backend), target_scorer(base.backend)
    except ScoringNotSupported as exc:
        not_measured.append(f"forgetting: {exc}")
        return None
    if progress:
        progress("forgetting")
    tuned, plain = (text_perplexity(s, general_texts) for s in scorers)
    return round(tuned / plain, 4)
