"""Training examples that carry retrieved context, as served replies do.

An adapter trained on bare requests learns to answer from memory, and a small model's memory
invents: prices, policies, "waterproof". Trained with the context the reply path will retrieve
for the same request (the example itself left out, so its own answer is never handed to it), it
learns to take facts from the context. A share of the examples get the context retrieved for a
different request, so it also learns to answer past context that does not bear on the question.

An example whose last reply states facts its context does not hold (a date, a count, a promise
that neither the retrieved text nor an earlier message states) would teach the opposite: that a
reply with context may still state facts beyond it. With ``grounded_only`` such an example trains
without context, so the lesson "context given, facts from it" has no counter-examples; it still
teaches the voice.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from brandvoice.datagen.claims import unsupported_claims
from brandvoice.inference.retrieval import EXAMPLE, with_context
from brandvoice.store.jsonl import last_request, write_jsonl
from brandvoice.trainer.eval_report import ContextTraining
from brandvoice.trainer.sft_data import read_chat_jsonl

Messages = list[dict[str, Any]]
ContextFor = Callable[[str, Sequence[tuple[str, int]]], str]
"""The context block retrieved for a request, leaving out the given (kind, id) entries; empty when
nothing is retrieved."""

CONTEXT_DIR = "context"


def states_only(messages: Messages, context: str) -> bool:
    """Whether the conversation's last reply states no fact beyond ``context`` and the messages
    before it (``datagen/claims.py``'s deterministic check)."""
    *before, last = messages
    if last.get("role") != "assistant" or not isinstance(last.get("content"), str):
        return True
    sources = [context, *(m["content"] for m in before if isinstance(m.get("content"), str))]
    return not unsupported_claims(last["content"], sources)


def contextualize(
    conversations: Sequence[Messages],
    example_ids: Sequence[int | None],
    context_for: ContextFor,
    irrelevant_share: float = 0.0,
    seed: int = 0,
    grounded_only: bool = False,
) -> tuple[list[Messages], ContextTraining]:
    """Each conversation with the context retrieved for its last request inserted after its system
    prompt, the conversation's own example excluded; ``irrelevant_share`` of them (seeded) get the
    context of another conversation's request instead (both examples excluded). With
    ``grounded_only``, a conversation whose last reply states facts beyond its context stays
    plain."""
    if len(example_ids) != len(conversations):
        raise ValueError(f"{len(example_ids)} example ids for {len(conversations)} conversations")
    rng = random.Random(seed)
    requests = [last_request(c) for c in conversations]
    out: list[Messages] = []
    with_any = irrelevant = ungrounded = 0
    for conversation, example_id, request in zip(conversations, example_ids, requests, strict=True):
        if request is None:
            out.append([dict(m) for m in conversation])
            continue
        exclude = [(EXAMPLE, example_id)] if example_id is not None else []
        query, swapped = request, False
        if irrelevant_share and rng.random() < irrelevant_share:
            others = [i for i, other in enumerate(requests) if other and other != request]
            if others:
                other = rng.choice(others)
                query, swapped = requests[other] or request, True
                if example_ids[other] is not None:
                    exclude.append((EXAMPLE, example_ids[other] or 0))
        context = context_for(query, exclude)
        if context and grounded_only and not states_only(conversation, context):
            out.append([dict(m) for m in conversation])
            ungrounded += 1
            continue
        out.append(with_context(conversation, context))
        with_any += bool(context)
        irrelevant += bool(context) and swapped
    use = ContextTraining(
        examples=len(conversations),
        with_context=with_any,
        irrelevant=irrelevant,
        ungrounded=ungrounded,
    )
    return out, use


def write_context_split(
    source: Path,
    target: Path,
    ids_for: Callable[[list[Messages]], list[int | None]],
    context_for: ContextFor,
    irrelevant_share: float = 0.0,
    seed: int = 0,
    grounded_only: bool = False,
) -> ContextTraining:
    """``source``'s conversations with their context, written to ``target`` (atomically)."""
    conversations = read_chat_jsonl(source)
    rows, use = contextualize(
        conversations, ids_for(conversations), context_for, irrelevant_share, seed, grounded_only
    )
    write_jsonl(target, rows)
    return use
