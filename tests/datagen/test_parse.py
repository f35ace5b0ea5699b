"""Strict parsing: one item or a JSON object of the asked shape, anything else a named failure."""

from __future__ import annotations

import pytest

from brandvoice.datagen.parse import (
    ParseError,
    parse_json_object,
    parse_plain_item,
    parse_plain_reply,
)


@pytest.mark.parametrize(
    ("raw", "item"),
    [
        ("When does my order ship?", "When does my order ship?"),
        ("Reworded: When does my order ship?", "When does my order ship?"),
        ('"When does my order ship?"', "When does my order ship?"),
        ("4. When does my order ship?", "When does my order ship?"),
    ],
)
def test_a_single_item_keeps_only_its_text(raw, item):
    assert parse_plain_item(raw) == item


@pytest.mark.parametrize(
    ("raw", "finish", "reason"),
    [
        ("", "stop", "empty"),
        ("1. Where is my order?\n2. When will it ship?", "stop", "several_items"),
        ("When does my order", "length", "truncated"),
        ("Sure<|im_end|>\n<|im_start|>user\nHi", "stop", "chat_markup"),
        ("assistant: Here you go", "stop", "chat_markup"),
        ("x" * 2000, "stop", "too_long"),
    ],
)
def test_anything_but_one_item_is_a_parse_failure(raw, finish, reason):
    with pytest.raises(ParseError) as failure:
        parse_plain_item(raw, finish_reason=finish)
    assert failure.value.reason == reason


def test_a_reply_may_hold_a_list():
    reply = "Three ideas:\n1. Trail-ready\n2. Fall colors\n3. Cozy nights\n\nHappy trails! 🌲"
    assert parse_plain_reply(reply) == reply


def test_json_objects_are_checked_against_their_fields():
    assert parse_json_object('```json\n{"request": "Hi there"}\n```', {"request": str}) == {
        "request": "Hi there"
    }
    assert parse_json_object('{"requests": ["a", "b"]}', {"requests": list})["requests"] == [
        "a",
        "b",
    ]
    cases = [
        ('{"request": "Hi"', {"request": str}, "invalid_json"),
        ('["Hi"]', {"request": str}, "wrong_shape"),
        ('{"text": "Hi"}', {"request": str}, "wrong_shape"),
        ('{"request": "  "}', {"request": str}, "wrong_shape"),
        ('{"requests": ["a", 3]}', {"requests": list}, "wrong_shape"),
    ]
    for raw, fields, reason in cases:
        with pytest.raises(ParseError) as failure:
            parse_json_object(raw, fields)
        assert failure.value.reason == reason, raw
