"""The team's brand guidelines: a short text kept in the store, put into every generation prompt."""

from __future__ import annotations

from sqlmodel import Session

from brandvoice.store.knowledge import live_chunks
from brandvoice.store.kv import get_setting, set_setting

GUIDELINES_KEY = "guidelines"
MAX_GUIDELINES_CHARS = 8_000
NO_GUIDELINES = "(No written guidelines yet: match the voice of the approved examples.)"


def get_guidelines(session: Session) -> str | None:
    value = get_setting(session, GUIDELINES_KEY)
    return value if isinstance(value, str) and value.strip() else None


def set_guidelines(session: Session, text: str, actor: str) -> str:
    """Store the guidelines (audited); long ones are refused since they ride along in every prompt."""
    text = text.strip()
    if not text:
        raise ValueError("the guidelines are empty; write a few lines about the voice")
    if len(text) > MAX_GUIDELINES_CHARS:
        raise ValueError(
            f"the guidelines are {len(text)} characters; keep them under {MAX_GUIDELINES_CHARS}, "
            "they go into every generation prompt"
        )
    set_setting(session, GUIDELINES_KEY, text, actor)
    return text


def guidelines_for_prompt(session: Session) -> str:
    return get_guidelines(session) or NO_GUIDELINES


def claim_sources(session: Session) -> list[str]:
    """What any reply may state besides its own conversation: the guidelines and every knowledge
    chunk (the sources of the unsupported-claims check, ``datagen/claims.py``)."""
    guidelines = get_guidelines(session)
    knowledge = [chunk.text for chunk, _ in live_chunks(session)]
    return [guidelines, *knowledge] if guidelines else knowledge
