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
TOOL_CALL_KEYS = frozenset({"id", "type", "function"})
FUNCTION_KEYS = frozenset({"name", "arguments"})
MAX_INT_DIGITS = 100
"""Longer integers are refused: no example needs one, and Python refuses past 4300 digits anyway."""

TokenCounter = Callable[[Sequence[Sequence[Mapping[str, Any]]]], list[int]]
"""Counts the tokens of many examples at once (see ``brandvoice.inference.tokens``)."""


def last_request(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The text of the last user message, or None when there is none (or it is blank)."""
    content = next((m.get("content") for m in reversed(messages) if m["role"] == "user"), None)
    return content if isinstance(content, str) and content.strip() else None


class InvalidExample(ValueError):
    """Messages that an import would refuse (format, types, token limit)."""


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


class _NotStrictJSON(ValueError):
    """A number JSON does not allow (NaN, Infinity), one too long to be a real value, or a key
    given twice: JSON that parsers read differently."""


def _refuse_constant(name: str) -> float:
    raise _NotStrictJSON(f"{name} is not a JSON number")


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise _NotStrictJSON(f"a number with {len(digits.lstrip('-'))} digits")
    return int(digits)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A key given twice is refused: readers disagree on which one wins (Python keeps the last),
    so ``{"role": "user", ..., "role": "assistant"}`` would mean one thing here and another there."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        keys = [key for key, _ in pairs]
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise _NotStrictJSON(f"key {duplicate!r} appears twice in one object")
    return obj


_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_int=_parse_int, object_pairs_hook=_unique_keys
)


def parse_line(line: str) -> Any:
    """One JSONL line as Python data; ValueError says, in words, why it is not strict JSON."""
    try:
        return _DECODER.decode(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except _NotStrictJSON as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None


def _text_problem(value: Any, where: str) -> str | None:
    """Why ``value`` cannot be stored as text: not a string, or a lone surrogate UTF-8 cannot hold."""
    if not isinstance(value, str):
        return f"{where} must be a string, got {type(value).__name__}"
    if "\x00" in value:
        return f"{where} has a NUL character (\\u0000), which PostgreSQL cannot store"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"{where} has a lone surrogate (\\u{ord(value[exc.start]):04x}), not text"
    return None


def _function_problem(call: Any, where: str) -> str | None:
    if not isinstance(call, dict):
        return f"{where} must be an object with 'name' and 'arguments'"
    unknown = sorted(set(call) - FUNCTION_KEYS)
    if unknown:
        return f"{where} has unrecognized key {unknown[0]!r}"
    for key in ("name", "arguments"):
        problem = _text_problem(call.get(key), f"{where}.{key}")
        if problem:
            return problem
    return None


def _tool_calls_problem(calls: Any, where: str) -> str | None:
    if not isinstance(calls, list) or not calls:
        return f"{where}.tool_calls must be a non-empty list"
    for index, call in enumerate(calls):
        at = f"{where}.tool_calls[{index}]"
        if not isinstance(call, dict):
            return f"{at} must be an object"
        unknown = sorted(set(call) - TOOL_CALL_KEYS)
        if unknown:
            return f"{at} has unrecognized key {unknown[0]!r}"
        for key in ("id", "type"):
            if key in call:
                problem = _text_problem(call[key], f"{at}.{key}")
                if problem:
                    return problem
        problem = _function_problem(call.get("function"), f"{at}.function")
        if problem:
            return problem
    return None


def _message_problem(message: Any, where: str) -> tuple[str, str] | None:
    if not isinstance(message, dict):
        return "message_not_object", f"{where} is not an object"
    if "role" not in message:
        return "missing_role", f"{where} has no 'role'"
    if "content" not in message and "tool_calls" not in message:
        return "missing_content", f"{where} has no 'content'"
    unknown = message.keys() - MESSAGE_KEYS
    if unknown:
        return "unrecognized_key", f"{where} has unrecognized key {sorted(unknown)[0]!r}"
    role = message["role"]
    if not isinstance(role, str):
        return "unknown_role", f"{where} role must be a string, got {type(role).__name__}"
    if role not in ROLES:
        return "unknown_role", f"{where} has unknown role {role!r} (use {', '.join(sorted(ROLES))})"
    content = message.get("content")
    if "content" in message and (not isinstance(content, str) or not content.strip()):
        return "empty_content", f"{where} ({role}) has empty or non-text content"
    for key in ("content", "name"):
        value = message.get(key)
        if key in message and not (
            isinstance(value, str) and value.isascii() and "\x00" not in value
        ):
            problem = _text_problem(value, f"{where} {key}")
            if problem:
                return "bad_text", problem
    if "weight" in message and (
        type(message["weight"]) is not int or message["weight"] not in (0, 1)
    ):
        return "bad_weight", f"{where} weight must be 0 or 1"
    if "function_call" in message:
        problem = _function_problem(message["function_call"], f"{where}.function_call")
        if problem:
            return "bad_tool_call", problem
    if "tool_calls" in message:
        problem = _tool_calls_problem(message["tool_calls"], where)
        if problem:
            return "bad_tool_call", problem
    return None


def check_example(obj: Any) -> tuple[str, str] | None:
    """The first problem of one parsed line as ``(kind, reason)``, or None.

    Every value an example may hold is checked for its type, so nothing unexpected (a list for a
    role, a float NaN, a lone surrogate, arbitrary nesting) ever reaches the store.
    """
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
        problem = _message_problem(message, f"messages[{index}]")
        if problem:
            return problem
        has_assistant = has_assistant or message["role"] == "assistant"
    if not has_assistant:
        return "no_assistant", "no assistant message to learn from"
    return None


def check_messages(messages: Any, count_tokens: TokenCounter, max_tokens: int) -> int:
    """The token count of messages that pass every check an imported line passes; else raises
    InvalidExample with the reason, so edits and imports can never disagree."""
    problem = check_example({"messages": messages})
    if problem:
        raise InvalidExample(problem[1])
    tokens = count_tokens([messages])[0]
    if tokens > max_tokens:
        raise InvalidExample(f"{tokens} tokens is over the limit of {max_tokens}")
    return tokens


def validate_lines(
    lines: Iterable[str | bytes],
    path: str,
    count_tokens: TokenCounter,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> ValidationReport:
    """Check every line; structurally valid examples are token-counted in one batch.

    Lines may be bytes, so a line that is not UTF-8 is reported on its own and the rest still read.
    """
    report = ValidationReport(path)
    pending: list[tuple[int, list[dict[str, Any]]]] = []
    for number, raw in enumerate(lines, start=1):
        if number == 1:
            # Editors on Windows start UTF-8 files with a byte order mark; it is not content.
            raw = raw.removeprefix(b"\xef\xbb\xbf" if isinstance(raw, bytes) else "\ufeff")  # type: ignore[arg-type]
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            column = len(raw[: exc.start].decode("utf-8", "replace")) + 1
            reason = f"not UTF-8 text ({exc.reason} at column {column})"
            report.problems.append(Problem(path, number, "not_utf8", reason))
            continue
        try:
            obj = parse_line(line)
        except ValueError as exc:
            report.problems.append(Problem(path, number, "not_json", str(exc)))
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
    with path.open("rb") as handle:
        return validate_lines(handle, str(path), count_tokens, max_tokens)


def dump_example(messages: Sequence[Mapping[str, Any]]) -> str:
    """One strict JSON line, keeping non-ASCII characters readable; ValueError rather than NaN."""
    try:
        line = json.dumps({"messages": list(messages)}, ensure_ascii=False, allow_nan=False)
        line.encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"example would not be valid JSON: {exc}") from None
    return line


def write_lines(path: Path, lines: Iterable[str]) -> int:
    """Write JSONL lines atomically (temp file, then rename); returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
            count += 1
    tmp.replace(path)
    return count


def write_jsonl(path: Path, conversations: Iterable[Sequence[Mapping[str, Any]]]) -> int:
    """Write conversations atomically; returns how many were written."""
    return write_lines(path, (dump_example(messages) for messages in conversations))
