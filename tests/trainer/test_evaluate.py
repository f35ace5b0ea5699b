"""Evaluation logic: the judge in both orders, ties, labels and the promotion verdict."""

from __future__ import annotations

import json

import pytest

from brandvoice.inference.openai_chat import OpenAIChat
from brandvoice.trainer.evaluate import (
    Contender,
    EvalConfig,
    judge_pairwise,
    pairwise_by_similarity,
    parse_verdict,
    split_reference,
    verdict,
)
from tests.fakes import FakeResponse, chat_completion, openai_server  # noqa: F401


def test_reference_is_the_last_assistant_reply_and_the_prompt_what_precedes_it():
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
    ]
    prompt, reference = split_reference(messages)
    assert reference == "a2" and prompt == messages[:4]


def test_few_shot_contender_puts_demonstrations_after_the_system_prompt():
    shot = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]
    contender = Contender("base + 1", backend=None, shots=[shot])  # type: ignore[arg-type]
    prompt = contender.prompt(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    )
    assert [m["content"] for m in prompt] == ["S", "q", "a", "Q"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"winner": "A"}', "A"),
        ('{"winner": "b"}', "B"),
        ("Tie.", "tie"),
        ("B is better", "B"),
        ("??", None),
    ],
)
def test_judge_answers_are_parsed_strictly(answer, expected):
    assert parse_verdict(answer) == expected


def test_without_a_judge_the_reply_closer_to_the_reference_wins_and_near_ties_count_half():
    assert pairwise_by_similarity([0.9, 0.5, 0.40], [0.1, 0.8, 0.405], margin=0.01) == [
        1.0,
        0.0,
        0.5,
    ]


def test_the_judge_is_asked_in_both_orders_and_disagreement_counts_half(openai_server):  # noqa: F811
    # Example 1: A wins, then (swapped) B wins -> candidate won both orders -> 1.
    # Example 2: A wins in both orders -> position bias -> 0.5.
    answers = ['{"winner": "A"}', '{"winner": "A"}', '{"winner": "B"}', '{"winner": "A"}']
    openai_server.script(
        "POST", "/v1/chat/completions", *(FakeResponse(200, chat_completion(a)) for a in answers)
    )
    judge = OpenAIChat(base_url=openai_server.base_url, api_key="k", model="judge", concurrency=1)
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(2)]
    scores = judge_pairwise(judge, prompts, ["r0", "r1"], ["cand0", "cand1"], ["prod0", "prod1"])
    assert scores == [1.0, 0.5]
    bodies = [r.body for r in openai_server.requests_to("POST", "/v1/chat/completions")]
    first = bodies[0]["messages"][0]["content"]
    swapped = bodies[2]["messages"][0]["content"]
    assert first.index("cand0") < first.index("prod0")
    assert swapped.index("prod0") < swapped.index("cand0")
    assert bodies[0]["temperature"] == 0 and bodies[0]["response_format"] == {"type": "json_object"}
    json.dumps(bodies)


def _metrics(win=0.7, cand_sim=0.6, prod_sim=0.5, cand_loss=1.0, prod_loss=1.2, forgetting=1.1):
    return {
        "win_rate": {"vs_production": win, "vs_baseline": win},
        "voice_similarity": {"candidate": cand_sim, "production": prod_sim, "baseline": 0.3},
        "val_loss": {"candidate": cand_loss, "production": prod_loss},
        "forgetting": forgetting,
    }


def test_verdict_recommends_only_a_candidate_that_beats_production_without_regressions():
    config = EvalConfig()
    assert verdict(_metrics(), config) == (True, [])
    ok, reasons = verdict(_metrics(win=0.5), config)
    assert not ok and "wins only 50%" in reasons[0]
    ok, reasons = verdict(_metrics(cand_loss=1.3), config)
    assert not ok and "validation loss rose from 1.200 to 1.300" in reasons[0]
    ok, reasons = verdict(_metrics(forgetting=2.0), config)
    assert not ok and "perplexity is 2.00x the base" in reasons[0]
    ok, reasons = verdict(_metrics(cand_sim=0.4), config)
    assert not ok and "voice similarity fell" in reasons[0]
