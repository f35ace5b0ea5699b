"""Strict parsing of what a generator wrote: one plain-text item, or a JSON object of known shape.

Nothing is repaired beyond trimming a label, quotes or a code fence: an output that is not exactly
one item is a parse failure, recorded with its raw text and counted, never dropped silently.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_REQUEST_CHARS = 1_500
MAX_REPLY_CHARS = 6_000

_CHAT_MARKUP = re.compile(
    r"<\|im_(?:start|end)\|>|<\|endoftext\|>|^(?:user|assistant|system):", re.M
)
_LABEL = re.compile(
    r"^\s*(?:(?:reworded|rewritten|new|paraphrased)\s+)?"
    r"(?:request|message|reply|answer|paraphrase|reword(?:ed)?|rewrite|rewritten)\s*\d*\s*:\s*",
    re.I,
)
_ITEM_MARK = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")
_NUMBERED_LINE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+\S", re.M)
_QUOTES = {'"': '"', "“": "”", "'": "'"}
_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.S)


class ParseError(ValueError):
    """An output that is not what the template asked for; ``reason`` is a short kind."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_plain_item(
    text: str,
    *,
    finish_reason: str | None = None,
    max_chars: int = MAX_REQUEST_CHARS,
    allow_lists: bool = False,
) -> str:
    """One item written as plain text; a leading label (``Request:``, ``4.``) and quotes are trimmed.

    ``allow_lists``: the item may itself hold a list (a reply may); a request that lists several
    lines is several items, which one call must not return.
    """
    if finish_reason == "length":
        raise ParseError("truncated", "the output stopped at the token limit")
    if _CHAT_MARKUP.search(text):
        raise ParseError("chat_markup", "the output contains chat template markup or role labels")
    item = _LABEL.sub("", text.strip(), count=1).strip()
    if not allow_lists:
        item = _ITEM_MARK.sub("", item, count=1)
    if len(item) >= 2 and _QUOTES.get(item[0]) == item[-1] and item.count(item[0]) == 2:
        item = item[1:-1].strip()
    if not item:
        raise ParseError("empty", "the output is empty")
    if not allow_lists and _NUMBERED_LINE.search(item):
        raise ParseError("several_items", "the output lists several items where one was asked")
    if len(item) > max_chars:
        raise ParseError("too_long", f"{len(item)} characters, more than {max_chars}")
    return item


def parse_plain_reply(text: str, *, finish_reason: str | None = None) -> str:
    """A reply: like a request, but lists inside it are allowed and it may be longer."""
    return parse_plain_item(
        text, finish_reason=finish_reason, max_chars=MAX_REPLY_CHARS, allow_lists=True
    )


def parse_json_object(
    text: str, fields: dict[str, type], *, finish_reason: str | None = None
) -> dict[str, Any]:
    """A JSON object with exactly the expected field types; strings non-empty, lists of strings.

    ``fields`` maps each required key to ``str`` or ``list``; other keys are ignored.
    """
    if finish_reason == "length":
        raise ParseError("truncated", "the JSON output stopped at the token limit")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise ParseError("invalid_json", f"not JSON ({exc.msg} at char {exc.pos})") from exc
    if not isinstance(value, dict):
        raise ParseError("wrong_shape", f"expected a JSON object, got {type(value).__name__}")
    for key, kind in fields.items():
        if key not in value:
            raise ParseError("wrong_shape", f"the JSON object has no {key!r}")
        item = value[key]
        if kind is str and not (isinstance(item, str) and item.strip()):
            raise ParseError("wrong_shape", f"{key!r} must be a non-empty string")
        if kind is list and not (
            isinstance(item, list) and all(isinstance(x, str) and x.strip() for x in item)
        ):
            raise ParseError("wrong_shape", f"{key!r} must be a list of non-empty strings")
    return value
