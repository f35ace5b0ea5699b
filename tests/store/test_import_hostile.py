"""Hostile lines in an import file: each is one ``file:line: reason``, never a crash.

Every case sits between two good lines, so ``skip_invalid`` must still import the rest.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from sqlmodel import select

from brandvoice.store.db import session_scope
from brandvoice.store.importer import ImportRefused, import_jsonl, iter_export
from brandvoice.store.jsonl import dump_example, validate_file
from brandvoice.store.models import Example

GOOD_A = json.dumps(
    {
        "messages": [
            {"role": "user", "content": "Do you ship to Canada?"},
            {"role": "assistant", "content": "We do, in 5 to 7 days."},
        ]
    }
)
GOOD_B = json.dumps(
    {
        "messages": [
            {"role": "user", "content": "Can I return boots?"},
            {"role": "assistant", "content": "Within 60 days, free label."},
        ]
    }
)


def _line(**assistant: object) -> str:
    message = {"role": "assistant", "content": "Sure.", **assistant}
    return json.dumps({"messages": [{"role": "user", "content": "Hi"}, message]})


HOSTILE: dict[str, tuple[bytes, str]] = {
    "nan": (
        b'{"messages": [{"role": "user", "content": "Hi"}, '
        b'{"role": "assistant", "content": "Ok", "weight": NaN}]}',
        "NaN is not a JSON number",
    ),
    "infinity_in_tool_arguments": (
        b'{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", '
        b'"function_call": {"name": "lookup", "arguments": -Infinity}}]}',
        "-Infinity is not a JSON number",
    ),
    "role_list": (
        _line().replace('"role": "assistant"', '"role": ["assistant"]').encode(),
        "messages[1] role must be a string",
    ),
    "role_object": (
        _line().replace('"role": "assistant"', '"role": {"is": "assistant"}').encode(),
        "messages[1] role must be a string",
    ),
    "deep_nesting": (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested"),
    "lone_surrogate": (
        b'{"messages": [{"role": "user", "content": "Hi \\ud800 there"}, '
        b'{"role": "assistant", "content": "Ok"}]}',
        "messages[0] content has a lone surrogate",
    ),
    "huge_integer": (
        b'{"messages": [{"role": "user", "content": "Hi"}, '
        b'{"role": "assistant", "content": "Ok", "weight": 1' + b"0" * 5000 + b"}]}",
        "a number with 5001 digits",
    ),
    "invalid_utf8": (
        b'{"messages": [{"role": "user", "content": "caf\xe9"}, '
        b'{"role": "assistant", "content": "Ok"}]}',
        "not UTF-8 text",
    ),
    "name_not_text": (_line(name=["ana"]).encode(), "messages[1] name must be a string"),
    "tool_arguments_not_text": (
        _line(
            tool_calls=[
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
            ]
        ).encode(),
        "messages[1].tool_calls[0].function.arguments must be a string",
    ),
    "nul_character": (
        b'{"messages": [{"role": "user", "content": "Hi\\u0000 there"}, '
        b'{"role": "assistant", "content": "Ok"}]}',
        "messages[0] content has a NUL character",
    ),
    "duplicate_role": (
        b'{"messages": [{"role": "user", "content": "Hi", "role": "assistant"}, '
        b'{"role": "assistant", "content": "Ok"}]}',
        "key 'role' appears twice",
    ),
    "duplicate_messages": (
        b'{"messages": [{"role": "user", "content": "Hi"}], '
        b'"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ok"}]}',
        "key 'messages' appears twice",
    ),
}


def _file(tmp_path: Path, hostile: bytes) -> Path:
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(GOOD_A.encode() + b"\n" + hostile + b"\n" + GOOD_B.encode() + b"\n")
    return path


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_each_hostile_line_is_reported_with_its_line_and_reason(case, tmp_path, count_tokens):
    hostile, reason = HOSTILE[case]
    path = _file(tmp_path, hostile)
    report = validate_file(path, count_tokens)
    assert [str(p).split(": ", 1)[0] for p in report.problems] == [f"{path}:2"]
    assert reason in str(report.problems[0])
    assert [r.line for r in report.records] == [1, 3]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_skip_invalid_imports_the_rest_and_export_stays_valid_json(
    case, tmp_path, engine, count_tokens
):
    path = _file(tmp_path, HOSTILE[case][0])
    with pytest.raises(ImportRefused), session_scope(engine) as session:
        import_jsonl(session, path, count_tokens)
    with session_scope(engine) as session:
        result = import_jsonl(session, path, count_tokens, skip_invalid=True)
    assert result.inserted == 2
    with session_scope(engine) as session:
        lines = [dump_example(messages) for messages in iter_export(session)]
    assert [json.loads(line) for line in lines] == [json.loads(GOOD_A), json.loads(GOOD_B)]


def test_names_and_tool_call_arguments_are_redacted_too(tmp_path, engine, count_tokens):
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "email_customer", "arguments": '{"to": "ana.p@gmail.com"}'},
    }
    row = {
        "messages": [
            {"role": "user", "content": "Mail Ana", "name": "ana.p@gmail.com"},
            {"role": "assistant", "tool_calls": [call]},
            {
                "role": "assistant",
                "content": "Done.",
                "function_call": {"name": "f", "arguments": "xoxb-123456789012-abcdefABCDEF"},
            },
        ]
    }
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with session_scope(engine) as session:
        result = import_jsonl(session, path, count_tokens)
    assert result.redactions == {"EMAIL": 2, "SLACK_TOKEN": 1}
    with session_scope(engine) as session:
        stored = session.exec(select(Example)).one().messages
    assert stored[0]["name"] == "<EMAIL>"
    assert stored[1]["tool_calls"][0]["function"]["arguments"] == '{"to": "<EMAIL>"}'
    assert stored[2]["function_call"]["arguments"] == "<SLACK_TOKEN>"
    assert "gmail" not in json.dumps(stored)


def test_export_refuses_to_write_a_non_finite_number():
    with pytest.raises(ValueError, match="would not be valid JSON"):
        dump_example([{"role": "assistant", "content": "x", "weight": math.nan}])


def test_a_windows_file_with_bom_crlf_and_blank_lines_imports_whole(tmp_path, count_tokens):
    path = tmp_path / "notepad.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + GOOD_A.encode() + b"\r\n\r\n" + GOOD_B.encode() + b"\r\n  \r\n"
    )
    report = validate_file(path, count_tokens)
    assert [str(p) for p in report.problems] == []
    assert [r.line for r in report.records] == [1, 3]
    assert report.records[0].messages == json.loads(GOOD_A)["messages"]
