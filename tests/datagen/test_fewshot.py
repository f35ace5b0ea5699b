"""Few-shot prompts and the strict reading of what a small model continues them with."""

from __future__ import annotations

import pytest

from brandvoice.datagen import fewshot
from brandvoice.datagen.parse import ParseError
from brandvoice.datagen.strategies import Parent
from brandvoice.inference.chat import ChatResult
from tests.datagen.brand import PARENTS, SYSTEM

POOL = [Parent(i, messages) for i, messages in enumerate(PARENTS.values(), start=1)]
MULTI_TURN = Parent(
    9,
    [
        {"role": "user", "content": "Do you ship to Canada?"},
        {"role": "assistant", "content": "We do, in 5 to 8 days."},
        {"role": "user", "content": "And what does it cost?"},
        {"role": "assistant", "content": "A flat $12."},
    ],
)


def stopped(text: str) -> ChatResult:
    return ChatResult(text, finish_reason="stop")


def test_the_request_prompt_shows_real_exchanges_and_leaves_a_customer_line_open():
    demos = fewshot.pick_demos(POOL[0], POOL, seed=3)

    prompt = fewshot.request_prompt(demos)

    assert demos[-1] == POOL[0], "the parent comes last, closest to the continuation"
    assert len(demos) == fewshot.DEMOS and len({d.id for d in demos}) == fewshot.DEMOS
    assert prompt.endswith("\n\nCustomer:")
    assert prompt.count("Customer: ") == fewshot.DEMOS
    assert prompt.count("\nReply: ") == fewshot.DEMOS
    assert f"Customer: {POOL[0].request}\nReply: {POOL[0].reply}\n\n" in prompt
    assert SYSTEM not in prompt, "no instructions: a pattern to continue"


def test_demonstrations_are_seeded_and_prefer_single_turn_exchanges():
    pool = [*POOL, MULTI_TURN]

    first = fewshot.pick_demos(POOL[1], pool, seed=5)

    assert first == fewshot.pick_demos(POOL[1], pool, seed=5)
    assert MULTI_TURN not in first
    assert fewshot.pick_demos(POOL[0], POOL[:2], seed=0) == [POOL[1], POOL[0]], "a small pool"


def test_the_reply_prompt_continues_the_same_text_with_the_new_request():
    demos = fewshot.pick_demos(POOL[0], POOL, seed=3)

    prompt = fewshot.reply_prompt(demos, "Can I  swap\nmy boots for a bigger size?")

    assert (
        prompt == fewshot.request_prompt(demos) + " Can I swap my boots for a bigger size?\nReply:"
    )


def test_the_voice_model_is_asked_as_it_is_served():
    assert fewshot.voice_messages(POOL[0], "Is the Burrow 2 waterproof?") == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Is the Burrow 2 waterproof?"},
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (' Customer email: "Do your packs have a rain cover?"', 'Customer email: "Do your packs have a rain cover?"'),
        ("Customer: Can I change my delivery address now?", "Can I change my delivery address now?"),
    ],
)  # fmt: skip
def test_a_new_request_is_one_line_without_its_label(text, expected):
    assert fewshot.parse_request(stopped(text)) == expected


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (ChatResult("Where is my order and when does it", finish_reason="length"), "truncated"),
        (stopped("   "), "empty"),
        (stopped("Is it warm? Reply: It is."), "chat_markup"),
        (stopped("Thanks!"), "too_short"),
        (stopped("Why " * 400), "too_long"),
    ],
)
def test_what_is_not_one_complete_request_is_a_parse_error(result, reason):
    with pytest.raises(ParseError) as caught:
        fewshot.parse_request(result)
    assert caught.value.reason == reason


def test_a_reply_is_read_whole_and_must_be_complete():
    reply = "Yes, it is.\n\nHappy trails! 🌲"

    assert fewshot.parse_reply(stopped(f"Reply: {reply}")) == reply
    with pytest.raises(ParseError, match="truncated"):
        fewshot.parse_reply(ChatResult(reply, finish_reason="length"))
    with pytest.raises(ParseError, match="chat_markup"):
        fewshot.parse_reply(stopped("Yes.\nCustomer: and then?"))


def test_one_seed_per_batch_the_first_tasks():
    from dataclasses import replace

    from brandvoice.datagen.strategies import Task

    tasks = [Task(POOL[0], "new_requests", i, "v", seed=100 + i) for i in range(3)]

    assert fewshot.batch_sampling(fewshot.REQUEST_SAMPLING, tasks) == replace(
        fewshot.REQUEST_SAMPLING, seed=100
    )
