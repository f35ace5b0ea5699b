"""Voice-aware adapter selection: greedy replies to validation prompts, scored against references.

Validation loss bottoms out before the voice lands (the sign-off and the phrasing settle later),
so selecting by loss keeps an adapter that does not yet sound like the brand. The probe asks the
adapter being trained for greedy replies to a few validation prompts, in one left-padded batch,
and scores them by MiniLM cosine similarity to the reference replies, plus the share that end
with the brand's sign-off when its references share one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from brandvoice.inference.embeddings import cosine_similarity

Messages = list[dict[str, Any]]

SIGN_OFF_SHARE = 0.8
"""A last line shared by at least this share of the reference replies is the brand's sign-off."""

SIGN_OFF_WEIGHT = 0.1
"""Weight of the sign-off rate in the voice score (similarity is in [0, 1] and moves by
hundredths between adapters; a missing sign-off is a visible miss, so it counts as 0.1)."""


def detect_sign_off(replies: Sequence[str], min_share: float = SIGN_OFF_SHARE) -> str | None:
    """The last line most replies end with (a fixed sign-off), or None when there is none."""
    last_lines = [r.strip().splitlines()[-1].strip() for r in replies if r.strip()]
    if len(last_lines) < 3:
        return None
    line, count = Counter(last_lines).most_common(1)[0]
    return line if line and count >= min_share * len(last_lines) else None


@dataclass(frozen=True)
class VoiceProbe:
    """Prompts with their reference replies; ``score`` rates a model's greedy replies to them."""

    prompts: tuple[str, ...]
    """Chat prompts rendered with the generation prompt, ready to tokenize."""
    references: tuple[str, ...]
    sign_off: str | None
    max_new_tokens: int

    @classmethod
    def from_conversations(
        cls,
        conversations: Sequence[Messages],
        tokenizer: Any,
        *,
        limit: int | None = None,
        sign_off: str | None = None,
    ) -> VoiceProbe:
        """The first ``limit`` conversations, each cut before its last assistant reply.

        ``max_new_tokens`` is the longest reference plus a margin, so a reply that rambles past
        the voice's length is cut (and scored as it is) rather than generated at length."""
        chosen = [c for c in conversations if c and c[-1].get("role") == "assistant"][:limit]
        if not chosen:
            raise ValueError("a voice probe needs conversations that end with an assistant reply")
        prompts = tuple(
            tokenizer.apply_chat_template(c[:-1], tokenize=False, add_generation_prompt=True)
            for c in chosen
        )
        references = tuple(str(c[-1]["content"]) for c in chosen)
        longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
        return cls(prompts, references, sign_off, max_new_tokens=min(longest + 16, 384))

    def replies(self, model: Any, tokenizer: Any, batch_size: int = 8) -> list[str]:
        """Greedy replies, batched with left padding, up to the end-of-turn token."""
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        replies: list[str] = []
        try:
            with torch.no_grad():
                for start in range(0, len(self.prompts), batch_size):
                    chunk = list(self.prompts[start : start + batch_size])
                    inputs = tokenizer(
                        chunk,
                        return_tensors="pt",
                        padding=True,
                        padding_side="left",
                        add_special_tokens=False,
                    ).to(device)
                    output = model.generate(
                        **inputs,
                        max_new_tokens=self.max_new_tokens,
                        do_sample=False,
                        temperature=None,
                        top_p=None,
                        top_k=None,
                        use_cache=True,
                        eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id,
                    )
                    width = inputs["input_ids"].shape[1]
                    replies += [
                        tokenizer.decode(row[width:], skip_special_tokens=True).strip()
                        for row in output
                    ]
        finally:
            model.train(was_training)
        return replies

    def score_replies(self, replies: Sequence[str]) -> dict[str, float]:
        """``voice_similarity``, ``sign_off_rate`` (with a sign-off) and their ``voice_score``."""
        similarity = sum(cosine_similarity(list(replies), list(self.references))) / len(replies)
        metrics = {"voice_similarity": similarity, "voice_score": similarity}
        if self.sign_off:
            rate = sum(r.rstrip().endswith(self.sign_off) for r in replies) / len(replies)
            metrics["sign_off_rate"] = rate
            metrics["voice_score"] = similarity + SIGN_OFF_WEIGHT * rate
        return metrics

    def score(self, model: Any, tokenizer: Any) -> dict[str, float]:
        return self.score_replies(self.replies(model, tokenizer))
