"""Greedy replies a model has given, kept on disk so that it is asked only for new prompts.

Each retrain evaluates production on the validation prompts and recent served requests, and
production is an earlier round's candidate, which answered some of the same prompts: the served
requests that are still among the newest, and validation prompts whose retrieved context has not
changed since. A greedy reply is the model's one answer to its prompt, so it is kept and reused
(on ``bench/loop_rounds.py``'s sample brand, 10-13 of production's ~40 replies a round). Sampled
replies are never cached: they are one draw of many.

A reply is keyed by the conversation exactly as the model saw it and the sampling settings. The
file is append-only JSON lines; a line a crash cut short is skipped, so that reply is generated
again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from brandvoice.inference.chat import ChatBackend, ChatResult, Sampling

log = logging.getLogger(__name__)

Messages = list[dict[str, Any]]


def reply_key(conversation: Messages, sampling: Sampling) -> str:
    """What identifies one greedy reply of one model: the rendered prompt and the settings."""
    payload = json.dumps(
        {"messages": conversation, "sampling": asdict(sampling)}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ReplyCache:
    """One model's greedy replies in ``path``; :meth:`complete_batch` asks the backend for the
    rest and keeps them. ``reused`` counts the replies that came from the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reused = 0
        self._known: dict[str, ChatResult] | None = None

    def complete_batch(
        self, backend: ChatBackend, conversations: Sequence[Messages], sampling: Sampling
    ) -> list[ChatResult]:
        if sampling.temperature != 0:
            return backend.complete_batch(conversations, sampling)
        keys = [reply_key(c, sampling) for c in conversations]
        known = self.read()
        missing = [i for i, key in enumerate(keys) if key not in known]
        if missing:
            fresh = backend.complete_batch([conversations[i] for i in missing], sampling)
            answered = {keys[i]: result for i, result in zip(missing, fresh, strict=True)}
            self._append(answered)
            known.update(answered)
        self.reused += len(keys) - len(missing)
        return [known[key] for key in keys]

    def read(self) -> dict[str, ChatResult]:
        """The replies kept so far, by ``reply_key``: the file, read once, and what was added."""
        if self._known is None:
            self._known = self._load()
        return self._known

    def _load(self) -> dict[str, ChatResult]:
        known: dict[str, ChatResult] = {}
        if not self.path.exists():
            return known
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    entry = json.loads(line)
                    known[entry["key"]] = ChatResult(
                        text=entry["text"],
                        model=entry.get("model", ""),
                        finish_reason=entry.get("finish_reason"),
                    )
                except (ValueError, KeyError, TypeError):
                    log.warning(
                        "%s:%d is not a cached reply; it will be generated", self.path, number
                    )
        return known

    def _append(self, replies: dict[str, ChatResult]) -> None:
        if not replies:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(
            json.dumps(
                {"key": key, "text": r.text, "model": r.model, "finish_reason": r.finish_reason}
            )
            + "\n"
            for key, r in replies.items()
        )
        with self.path.open("a+b") as out:
            if out.tell():
                out.seek(-1, os.SEEK_END)
                if out.read(1) != b"\n":  # a line a crash cut short
                    lines = "\n" + lines
            out.write(lines.encode("utf-8"))
