"""Completion-style generation for a small local model: continue a pattern, don't follow orders.

SmolLM2-135M does not follow the instruction templates (0 of 3 candidates kept in the demo,
1 of 30 measured: outputs cut off at the token limit, loops, drift), but it continues text well.
So a new request is written by continuing a few of the brand's real exchanges shown as plain text::

    Customer: <approved request>
    Reply: <approved reply>

    Customer: <approved request>
    Reply: <approved reply>

    Customer:

and stopping at the end of the line. The reply to it is written by the voice model (the latest
trained adapter, asked exactly as it is served: the parent's system prompt and the request) when
there is one, else by the same few-shot text continued after ``Reply:`` up to the next
``Customer:``. The demonstrations are the parent and a few other training examples, single-turn
where possible (the last turn of a conversation often leans on earlier ones).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import replace

from brandvoice.datagen.parse import MAX_REPLY_CHARS, MAX_REQUEST_CHARS, ParseError
from brandvoice.datagen.strategies import Parent, Task
from brandvoice.inference.chat import ChatResult, Sampling

STRATEGY = "new_requests"
"""What the few-shot prompt makes: a new exchange resembling its demonstrations (Self-Instruct's
``new_requests``, done by continuation), judged with that strategy's on-topic band."""

REQUEST_REF = "fewshot_request@1"
VOICE_REPLY_REF = "voice_reply@1"
FEWSHOT_REPLY_REF = "fewshot_reply@1"
DEMOS = 4
"""Exchanges shown: the parent and three others. Four fit in ~600 tokens, which keeps a batch of
8 prompts cheap on CPU; fewer made the model copy the last one more often."""

REQUEST_SAMPLING = Sampling(temperature=0.9, top_p=0.95, max_tokens=64, stop=("\n",))
"""Hot enough that several candidates of one parent differ; one line (real requests are one
line, and 64 tokens holds the longest of the sample brand's with room to spare)."""
FEWSHOT_REPLY_SAMPLING = Sampling(temperature=0.7, max_tokens=200, stop=("\nCustomer:",))

_LABEL = re.compile(r"^\s*(?:customer|reply)\s*:\s*", re.I)
_ROLE_IN_TEXT = re.compile(r"\b(?:customer|reply)\s*:", re.I)
_MIN_REQUEST_WORDS = 4


def template_version(voice_reply: bool) -> str:
    """What a few-shot candidate records, e.g. ``fewshot_request@1+voice_reply@1``."""
    return f"{REQUEST_REF}+{VOICE_REPLY_REF if voice_reply else FEWSHOT_REPLY_REF}"


def pick_demos(parent: Parent, pool: Sequence[Parent], seed: int, n: int = DEMOS) -> list[Parent]:
    """The parent and ``n - 1`` others from ``pool`` (single-turn first), in a seeded order with
    the parent last, closest to where the model continues."""
    others = [p for p in pool if p.id != parent.id]
    single = [p for p in others if _turns(p) == 1]
    chosen_from = single if len(single) >= n - 1 else others
    rng = random.Random(seed)
    shown = rng.sample(chosen_from, min(n - 1, len(chosen_from)))
    return [*shown, parent]


def request_prompt(demos: Sequence[Parent]) -> str:
    """The demonstrations as plain text, ending in an open ``Customer:`` line."""
    return "".join(_exchange(d.request, d.reply) for d in demos) + "Customer:"


def reply_prompt(demos: Sequence[Parent], request: str) -> str:
    """The same demonstrations, then the new request and an open ``Reply:``."""
    return request_prompt(demos) + f" {_one_line(request)}\nReply:"


def voice_messages(parent: Parent, request: str) -> list[dict[str, str]]:
    """The request as the voice model is served and trained: the parent's system prompt first."""
    system = [{"role": "system", "content": parent.system}] if parent.system else []
    return [*system, {"role": "user", "content": request}]


def _complete_text(result: ChatResult, what: str) -> str:
    """The output without its leading role label; refused when cut at the token limit or empty."""
    if result.finish_reason == "length":
        raise ParseError("truncated", f"the {what} stopped at the token limit")
    text = _LABEL.sub("", result.text.strip(), count=1).strip()
    if not text:
        raise ParseError("empty", "the output is empty")
    return text


def parse_request(result: ChatResult) -> str:
    """One new request: a single complete line of at least a few words, with no role labels."""
    text = _complete_text(result, "request")
    if _ROLE_IN_TEXT.search(text):
        raise ParseError("chat_markup", "the request holds a role label (two turns in one line)")
    if len(text.split()) < _MIN_REQUEST_WORDS:
        raise ParseError("too_short", f"{len(text.split())} words, fewer than {_MIN_REQUEST_WORDS}")
    if len(text) > MAX_REQUEST_CHARS:
        raise ParseError("too_long", f"{len(text)} characters, more than {MAX_REQUEST_CHARS}")
    return text


def parse_reply(result: ChatResult) -> str:
    """A reply, complete (ended by the model or at the next ``Customer:``), without labels."""
    text = _complete_text(result, "reply")
    if _ROLE_IN_TEXT.search(text) or "<|im_" in text:
        raise ParseError("chat_markup", "the reply holds a role label or chat markup")
    if len(text) > MAX_REPLY_CHARS:
        raise ParseError("too_long", f"{len(text)} characters, more than {MAX_REPLY_CHARS}")
    return text


def batch_sampling(sampling: Sampling, tasks: Sequence[Task]) -> Sampling:
    """One seed for a batch (a batched call samples all rows from one generator state): the
    first task's, so a rerun of the same chunk samples the same way."""
    return replace(sampling, seed=tasks[0].seed if tasks else sampling.seed)


def _exchange(request: str, reply: str) -> str:
    return f"Customer: {_one_line(request)}\nReply: {reply.strip()}\n\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _turns(parent: Parent) -> int:
    return sum(1 for m in parent.messages if m.get("role") == "user")
