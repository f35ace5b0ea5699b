"""Evaluation of a candidate against production and a few-shot base, in one report.

The report holds validation loss (local models), voice similarity to the reference replies,
head-to-head win rates (an LLM judge asked in both orders when configured, otherwise the reply
closer to the reference), exact match on label-like references, forgetting on general text,
side-by-side samples and a verdict that recommends promotion only when the candidate beats
production and nothing regresses past the thresholds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brandvoice.inference.chat import ChatBackend, Sampling
from brandvoice.trainer.sft_data import read_chat_jsonl

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
    max_val_loss_increase: float = 0.02
    """Relative validation-loss rise over production that still counts as no regression."""
    max_forgetting: float = 1.25
    """Highest allowed general-text perplexity of the candidate relative to the base."""
    min_win_rate: float = 0.5
    """The candidate must win more than this share against production."""


@dataclass
class Contender:
    """A model in the comparison: how it answers, and (for local models) how to score losses."""

    label: str
    backend: ChatBackend
    shots: list[Messages] = field(default_factory=list)
    """Demonstrations put before each prompt (the few-shot baseline)."""

    def prompt(self, conversation: Messages) -> Messages:
        system = [m for m in conversation[:1] if m["role"] == "system"]
        rest = conversation[len(system) :]
        demos = [m for shot in self.shots for m in shot if m["role"] != "system"]
        return [*system, *demos, *rest]

    @property
    def is_local(self) -> bool:
        return hasattr(self.backend, "host")


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


def mean_target_loss(contender: Contender, val_path: Path, max_length: int) -> float:
    """Mean cross-entropy over assistant tokens (the training objective) for a local model."""
    from brandvoice.trainer.lora import validation_loss

    backend: Any = contender.backend
    with backend.host.active(backend.adapter) as model:
        return validation_loss(model, val_path, base_model=backend.base.name, max_length=max_length)


def perplexity(contender: Contender, texts: list[str], max_length: int = 256) -> float:
    """Perplexity of plain text, to see how much general language the adapter has forgotten."""
    import torch

    backend: Any = contender.backend
    tokenizer = backend.base.tokenizer
    total, count = 0.0, 0
    with backend.host.active(backend.adapter) as model, torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
            input_ids = ids["input_ids"].to(backend.base.device)
            if input_ids.shape[1] < 2:
                continue
            out = model(input_ids=input_ids, labels=input_ids)
            n = input_ids.shape[1] - 1
            total, count = total + float(out.loss) * n, count + n
    return math.exp(total / max(count, 1))


def verdict(metrics: dict[str, Any], config: EvalConfig) -> tuple[bool, list[str]]:
    """Recommend promotion only when the candidate beats production and nothing regresses."""
    reasons = []
    win = metrics["win_rate"]["vs_production"]
    if win <= config.min_win_rate:
        reasons.append(
            f"wins only {win:.0%} against production (needs > {config.min_win_rate:.0%})"
        )
    similarity = metrics["voice_similarity"]
    if similarity["candidate"] < similarity["production"]:
        reasons.append(
            f"voice similarity fell from {similarity['production']:.3f} to {similarity['candidate']:.3f}"
        )
    loss = metrics.get("val_loss") or {}
    if loss.get("candidate") is not None and loss.get("production") is not None:
        limit = loss["production"] * (1 + config.max_val_loss_increase)
        if loss["candidate"] > limit:
            reasons.append(
                f"validation loss rose from {loss['production']:.3f} to {loss['candidate']:.3f}"
            )
    forgetting = metrics.get("forgetting")
    if forgetting is not None and forgetting > config.max_forgetting:
        reasons.append(
            f"general-text perplexity is {forgetting:.2f}x the base (limit {config.max_forgetting}x)"
        )
    return not reasons, reasons


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
) -> dict[str, Any]:
    """The evaluation report of ``candidate`` on the validation set, as JSON-ready data."""
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
        results = contender.backend.complete_batch([contender.prompt(p) for p in prompts], sampling)
        replies[key] = [r.text for r in results]
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
    labels = [i for i, ref in enumerate(references) if is_label(ref, config.label_max_words)]
    metrics: dict[str, Any] = {
        "examples": len(shown),
        "judge": getattr(judge, "model_name", None) if judge else "closer to reference",
        "labels": {
            "candidate": candidate.label,
            "production": production.label,
            "baseline": baseline.label,
        },
        "voice_similarity": {k: round(sum(v) / len(v), 4) for k, v in sims.items()},
        "win_rate": {
            "vs_production": round(sum(win_production) / len(win_production), 4),
            "vs_baseline": round(sum(win_baseline) / len(win_baseline), 4),
        },
        "exact_match": {
            key: round(
                sum(
                    normalize_label(replies[key][i]) == normalize_label(references[i])
                    for i in labels
                )
                / len(labels),
                4,
            )
            for key in contenders
        }
        if labels
        else None,
        "samples": [
            {
                "prompt": prompts[i][-1]["content"],
                "reference": references[i],
                "production": replies["production"][i],
                "candidate": replies["candidate"][i],
            }
            for i in range(min(config.samples, len(shown)))
        ],
    }
    if candidate.is_local and production.is_local:
        if progress:
            progress("validation loss")
        metrics["val_loss"] = {
            "candidate": round(mean_target_loss(candidate, val_path, max_length), 4),
            "production": round(mean_target_loss(production, val_path, max_length), 4),
        }
    if general_texts and base is not None and candidate.is_local:
        if progress:
            progress("forgetting")
        ratio = perplexity(candidate, general_texts) / perplexity(base, general_texts)
        metrics["forgetting"] = round(ratio, 4)
    recommend, reasons = verdict(metrics, config)
    metrics["verdict"] = {"recommend_promote": recommend, "reasons": reasons}
    return metrics
