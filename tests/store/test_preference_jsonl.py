from __future__ import annotations

import json

import pytest

from brandvoice.store.preference_jsonl import (
    InvalidPreferenceFile,
    PreferenceRecord,
    openai_record,
    read_preference_jsonl,
    trl_record,
    write_preference_jsonl,
)

PROMPT = [
    {"role": "system", "content": "You are Acme's voice."},
    {"role": "user", "content": "Can I get a refund?"},
]


def test_pairs_written_in_trl_format_read_back_unchanged(tmp_path):
    pairs = [
        PreferenceRecord(PROMPT, "Sure — refunds take 5 days. Cheers, Acme", "No."),
        PreferenceRecord(PROMPT[1:], "Café hours: 9–5 ☕", "We never close."),
    ]
    path = tmp_path / "preference_train.jsonl"
    assert write_preference_jsonl(path, pairs) == 2
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first == {
        "prompt": PROMPT,
        "chosen": [{"role": "assistant", "content": pairs[0].chosen}],
        "rejected": [{"role": "assistant", "content": "No."}],
    }
    assert read_preference_jsonl(path) == pairs


def test_openai_record_has_the_documented_keys():
    assert openai_record(PROMPT, "yes", "no") == {
        "input": {"messages": PROMPT},
        "preferred_output": [{"role": "assistant", "content": "yes"}],
        "non_preferred_output": [{"role": "assistant", "content": "no"}],
    }


def test_blank_lines_and_a_byte_order_mark_are_not_pairs(tmp_path):
    path = tmp_path / "p.jsonl"
    line = json.dumps(trl_record(PROMPT, "yes", "no"))
    path.write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\n\n  \n" + line.encode() + b"\n")
    assert len(read_preference_jsonl(path)) == 2


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        (json.dumps({"prompt": PROMPT, "chosen": []}), "'rejected' is missing"),
        (
            json.dumps({**trl_record(PROMPT, "a", "b"), "score": 1}),
            "unrecognized key 'score'",
        ),
        (json.dumps(trl_record([], "a", "b")), "'prompt' must be a non-empty list"),
        (
            json.dumps(trl_record([{"role": "tool", "content": "x"}], "a", "b")),
            "prompt[0] role must be one of",
        ),
        (json.dumps(trl_record([{"role": "user", "content": " "}], "a", "b")), "prompt: "),
        (
            json.dumps({**trl_record(PROMPT, "a", "b"), "chosen": "a"}),
            "'chosen' must be a list holding one assistant message",
        ),
        (
            json.dumps(
                {**trl_record(PROMPT, "a", "b"), "rejected": [{"role": "user", "content": "b"}]}
            ),
            "'rejected'[0] role must be 'assistant'",
        ),
        (json.dumps(trl_record(PROMPT, "a", "")), "'rejected'[0] content must be non-empty"),
        (json.dumps(trl_record(PROMPT, "same", " same ")), "chosen and rejected are the same"),
        (json.dumps(trl_record(PROMPT, "a\u0000", "b")), "NUL character"),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path, line, reason):
    path = tmp_path / "pairs.jsonl"
    good = json.dumps(trl_record(PROMPT, "yes", "no"))
    path.write_text(f"{good}\n{line}\n{good}\n", encoding="utf-8")
    with pytest.raises(InvalidPreferenceFile) as caught:
        read_preference_jsonl(path)
    assert [(p.line, p.path) for p in caught.value.problems] == [(2, str(path))]
    assert str(caught.value).startswith(f"{path}:2: ")
    assert reason in str(caught.value)


def test_every_bad_line_is_reported_with_a_cap_on_the_message(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b"\xff\n" + b"{}\n" * 14)
    with pytest.raises(InvalidPreferenceFile) as caught:
        read_preference_jsonl(path)
    assert len(caught.value.problems) == 15
    assert "not UTF-8" in str(caught.value).splitlines()[0]
    assert str(caught.value).splitlines()[-1] == "... and 5 more bad line(s)"
