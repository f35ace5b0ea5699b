"""Preference pairs on disk: TRL's conversational DPO JSONL, and OpenAI's preference JSONL.

One TRL line is ``{"prompt": [messages...], "chosen": [{"role": "assistant", "content": ...}],
"rejected": [{"role": "assistant", "content": ...}]}``; one OpenAI line is ``{"input": {"messages":
[...]}, "preferred_output": [assistant message], "non_preferred_output": [assistant message]}``.
The reader checks every line as strictly as an example import does and names each bad line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brandvoice.store.jsonl import Problem, check_example, parse_line, write_lines

PREFERENCE_KEYS = frozenset({"prompt", "chosen", "rejected"})
PROMPT_ROLES = frozenset({"system", "user", "assistant"})
MAX_REPORTED_PROBLEMS = 10


@dataclass(frozen=True)
class PreferenceRecord:
    """One pair: the conversation up to the reply, the preferred reply and the worse one."""

    prompt: list[dict[str, Any]]
    chosen: str
    rejected: str


class InvalidPreferenceFile(ValueError):
    """A preference file with bad lines; ``problems`` names each one as ``path:line: reason``."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = [str(p) for p in problems[:MAX_REPORTED_PROBLEMS]]
        more = len(problems) - len(shown)
        if more:
            shown.append(f"... and {more} more bad line(s)")
        super().__init__("\n".join(shown))


def _reply_problem(value: Any, key: str) -> str | None:
    """Why ``value`` is not TRL's one-assistant-message completion."""
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        return f"'{key}' must be a list holding one assistant message"
    message = value[0]
    if set(message) != {"role", "content"}:
        return f"'{key}'[0] must have exactly 'role' and 'content'"
    if message["role"] != "assistant":
        return f"'{key}'[0] role must be 'assistant', got {message['role']!r}"
    content = message["content"]
    if not isinstance(content, str) or not content.strip():
        return f"'{key}'[0] content must be non-empty text"
    return None


def check_preference(obj: Any) -> str | None:
    """The first problem of one parsed TRL line, or None.

    The prompt passes the checks an example's messages pass (roles, text, no NULs) and holds no
    weights or tool calls; chosen and rejected are single assistant messages that differ.
    """
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    missing = sorted(PREFERENCE_KEYS - set(obj))
    if missing:
        return f"{missing[0]!r} is missing"
    extra = sorted(set(obj) - PREFERENCE_KEYS)
    if extra:
        return f"unrecognized key {extra[0]!r} (only prompt, chosen and rejected are allowed)"
    prompt = obj["prompt"]
    if not isinstance(prompt, list) or not prompt:
        return "'prompt' must be a non-empty list of messages"
    for index, message in enumerate(prompt):
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            return f"prompt[{index}] must be an object with only 'role' and 'content'"
        if message.get("role") not in PROMPT_ROLES:
            return f"prompt[{index}] role must be one of {', '.join(sorted(PROMPT_ROLES))}"
    # The example checks need an assistant turn; a reply stands in for it.
    problem = check_example({"messages": [*prompt, {"role": "assistant", "content": "x"}]})
    if problem:
        return f"prompt: {problem[1]}"
    for key in ("chosen", "rejected"):
        problem_text = _reply_problem(obj[key], key)
        if problem_text:
            return problem_text
    for key in ("chosen", "rejected"):
        bad = check_example({"messages": obj[key]})
        if bad:
            return f"'{key}': {bad[1]}"
    if obj["chosen"][0]["content"].strip() == obj["rejected"][0]["content"].strip():
        return "chosen and rejected are the same reply"
    return None


def read_preference_lines(lines: Iterable[str | bytes], path: str) -> list[PreferenceRecord]:
    """Every pair in ``lines``; InvalidPreferenceFile naming each bad line if any is bad.

    Blank lines are skipped and a byte order mark at the start is not content, as for examples.
    """
    records: list[PreferenceRecord] = []
    problems: list[Problem] = []
    for number, raw in enumerate(lines, start=1):
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf" if isinstance(raw, bytes) else "\ufeff")  # type: ignore[arg-type]
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            problems.append(Problem(path, number, "not_utf8", f"not UTF-8 text ({exc.reason})"))
            continue
        try:
            obj = parse_line(line)
        except ValueError as exc:
            problems.append(Problem(path, number, "not_json", str(exc)))
            continue
        problem = check_preference(obj)
        if problem:
            problems.append(Problem(path, number, "bad_pair", problem))
            continue
        records.append(
            PreferenceRecord(
                prompt=obj["prompt"],
                chosen=obj["chosen"][0]["content"],
                rejected=obj["rejected"][0]["content"],
            )
        )
    if problems:
        raise InvalidPreferenceFile(problems)
    return records


def read_preference_jsonl(path: Path | str) -> list[PreferenceRecord]:
    """The pairs of a TRL preference file (a snapshot's ``preference_train.jsonl``); raises
    InvalidPreferenceFile with ``path:line: reason`` for every bad line, FileNotFoundError if absent.
    """
    with Path(path).open("rb") as handle:
        return read_preference_lines(handle, str(path))


def trl_record(prompt: Sequence[Mapping[str, Any]], chosen: str, rejected: str) -> dict[str, Any]:
    """One pair in TRL's conversational DPO format."""
    return {
        "prompt": [dict(m) for m in prompt],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def openai_record(
    prompt: Sequence[Mapping[str, Any]], chosen: str, rejected: str
) -> dict[str, Any]:
    """One pair in OpenAI's preference (DPO) fine-tuning format."""
    return {
        "input": {"messages": [dict(m) for m in prompt]},
        "preferred_output": [{"role": "assistant", "content": chosen}],
        "non_preferred_output": [{"role": "assistant", "content": rejected}],
    }


EXPORT_FORMATS = {"trl": trl_record, "openai": openai_record}
"""How pairs are exported: TRL's conversational DPO lines, or OpenAI's (and Together's)
preference fine-tuning lines."""


def dump_record(record: Mapping[str, Any]) -> str:
    """One strict JSON line, non-ASCII kept readable; ValueError rather than NaN."""
    return json.dumps(record, ensure_ascii=False, allow_nan=False)


def write_records(path: Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write JSONL atomically; returns how many lines were written."""
    return write_lines(path, (dump_record(record) for record in records))


def write_preference_jsonl(path: Path, records: Iterable[PreferenceRecord]) -> int:
    """Write pairs in TRL's format, readable back by :func:`read_preference_jsonl`."""
    return write_records(path, (trl_record(r.prompt, r.chosen, r.rejected) for r in records))
