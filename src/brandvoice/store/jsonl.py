"""Validation, reading and writing of chat examples in OpenAI's fine-tuning JSONL format.

Validation follows OpenAI's data-prep cookbook: every problem is reported with its line, counted
by kind, before anything is written.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAX_TOKENS = 16_385
ROLES = frozenset({"system", "user", "assistant", "function", "tool"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "function_call", "tool_calls"})
EXAMPLE_KEYS = frozenset({"messages"})

TokenCounter = Callable[[Sequence[Sequence[Mapping[str, Any]]]], list[int]]
"""Counts the tokens of many examples at once (see ``brandvoice.inference.tokens``)."""


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    kind: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class ValidRecord:
    line: int
    messages: list[dict[str, Any]]
    token_count: int | None
    """Exact count, or None when the byte-length bound already proved the example short enough."""


@dataclass
class ValidationReport:
    path: str
    records: list[ValidRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problem_counts(self) -> Counter[str]:
        return Counter(p.kind for p in self.problems)


def check_example(obj: Any) -> tuple[str, str] | None:
    """The first structural problem of one parsed line as ``(kind, reason)``, or None."""
    if not isinstance(obj, dict):
        return "not_object", f"expected a JSON object, got {type(obj).__name__}"
    messages = obj.get("messages")
    if messages is None:
        return "missing_messages", "'messages' is missing"
    extra = sorted(set(obj) - EXAMPLE_KEYS)
    if extra:
        return "unrecognized_key", f"unrecognized key {extra[0]!r} (only 'messages' is allowed)"
    if not isinstance(messages, list) or not messages:
        return "messages_not_list", "'messages' must be a non-empty list"
    has_assistant = False
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            return "message_not_object", f"{where} is not an object"
        if "role" not in message:
            return "missing_role", f"{where} has no 'role'"
        if "content" not in message and "tool_calls" not in message:
            return "missing_content", f"{where} has no 'content'"
        unknown = sorted(set(message) - MESSAGE_KEYS)
        if unknown:
            return "unrecognized_key", f"{where} has unrecognized key {unknown[0]!r}"
        role = message["role"]
        if role not in ROLES:
            return (
                "unknown_role",
                f"{where} has unknown role {role!r} (use {', '.join(sorted(ROLES))})",
            )
        content = message.get("content")
        if "content" in message and (not isinstance(content, str) or not content.strip()):
            return "empty_content", f"{where} ({role}) has empty or non-text content"
        if "weight" in message and message["weight"] not in (0, 1):
            return "bad_weight", f"{where} weight must be 0 or 1"
        has_assistant = has_assistant or role == "assistant"
    if not has_assistant:
        return "no_assistant", "no assistant message to learn from"
    return None


def validate_lines(
    lines: Iterable[str],
    path: str,
    count_tokens: TokenCounter,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> ValidationReport:
    """Check every line; structurally valid examples are token-counted in one batch."""
    report = ValidationReport(path)
    pending: list[tuple[int, list[dict[str, Any]]]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report.problems.append(Problem(path, number, "not_json", f"not valid JSON ({exc.msg})"))
            continue
        problem = check_example(obj)
        if problem:
            report.problems.append(Problem(path, number, *problem))
            continue
        pending.append((number, obj["messages"]))
    # A token is at least one byte, so the UTF-8 length bounds the count: only examples whose
    # bound reaches the limit need an exact (slower) count to decide.
    bounds = [_byte_bound(messages) for _, messages in pending]
    near_limit = [i for i, bound in enumerate(bounds) if bound > max_tokens]
    exact: dict[int, int] = dict(
        zip(near_limit, count_tokens([pending[i][1] for i in near_limit]), strict=True)
    )
    for index, (number, messages) in enumerate(pending):
        tokens = exact.get(index)
        if tokens is not None and tokens > max_tokens:
            report.problems.append(
                Problem(
                    path, number, "too_long", f"{tokens} tokens is over the limit of {max_tokens}"
                )
            )
            continue
        roles = {m["role"] for m in messages}
        if "system" not in roles:
            report.warnings["no_system_message"] += 1
        if "user" not in roles:
            report.warnings["no_user_message"] += 1
        report.records.append(ValidRecord(number, messages, tokens))
    report.problems.sort(key=lambda p: p.line)
    return report


def _byte_bound(messages: Sequence[Mapping[str, Any]]) -> int:
    """An upper bound of the cookbook token count: bytes instead of tokens, same overheads."""
    bound = 3
    for message in messages:
        bound += 3
        for key in ("role", "content", "name"):
            value = message.get(key)
            if isinstance(value, str):
                bound += len(value.encode()) + (1 if key == "name" else 0)
    return bound


def validate_file(
    path: Path, count_tokens: TokenCounter, max_tokens: int = DEFAULT_MAX_TOKENS
) -> ValidationReport:
    try:
        with path.open(encoding="utf-8") as handle:
            return validate_lines(handle, str(path), count_tokens, max_tokens)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def dump_example(messages: Sequence[Mapping[str, Any]]) -> str:
    """One JSONL line, keeping non-ASCII characters readable."""
    return json.dumps({"messages": list(messages)}, ensure_ascii=False)


def write_jsonl(path: Path, conversations: Iterable[Sequence[Mapping[str, Any]]]) -> int:
    """Write conversations atomically (temp file, then rename); returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for messages in conversations:
            handle.write(dump_example(messages) + "\n")
            count += 1
    tmp.replace(path)
    return count
