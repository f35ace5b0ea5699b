"""Evaluation logic: the judge in both orders, ties, labels and the promotion verdict."""

from __future__ import annotations

import json

import pytest

from brandvoice.inference.openai_chat import OpenAIChat
from brandvoice.inference.reply_cache import ReplyCache
from brandvoice.inference.scoring import ScoringNotSupported, target_scorer
from brandvoice.trainer.eval_report import (
    ContenderScores,
    EvalReport,
    ValidationLoss,
    Verdict,
    WinRates,
)
from brandvoice.trainer.evaluate import (
    Contender,
    EvalConfig,
    evaluate,
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


def _verdict(win=0.7, cand_sim=0.6, prod_sim=0.5, cand_loss=1.0, prod_loss=1.2, forgetting=1.1):
    return verdict(
        win_rate=WinRates(vs_production=win, vs_baseline=win),
        voice_similarity=ContenderScores(candidate=cand_sim, production=prod_sim, baseline=0.3),
        val_loss=ValidationLoss(candidate=cand_loss, production=prod_loss),
        forgetting=forgetting,
        config=EvalConfig(),
    )


def test_verdict_recommends_only_a_candidate_that_beats_production_without_regressions():
    assert _verdict() == Verdict(recommend_promote=True, reasons=[])
    outcome = _verdict(win=0.5)
    assert not outcome.recommend_promote and "wins only 50%" in outcome.reasons[0]
    outcome = _verdict(cand_loss=1.3)
    assert not outcome.recommend_promote
    assert "validation loss rose from 1.200 to 1.300" in outcome.reasons[0]
    assert _verdict(cand_loss=1.25, prod_loss=1.2).recommend_promote, "+4%: the trainer's tie"
    assert not _verdict(cand_loss=1.27, prod_loss=1.2).recommend_promote
    outcome = _verdict(forgetting=2.0)
    assert not outcome.recommend_promote and "perplexity is 2.00x the base" in outcome.reasons[0]
    outcome = _verdict(cand_sim=0.4)
    assert not outcome.recommend_promote and "voice similarity fell" in outcome.reasons[0]


def test_a_server_backend_says_it_cannot_score(openai_server):  # noqa: F811
    hosted = OpenAIChat(base_url=openai_server.base_url, api_key="k", model="ft:brand-1")

    with pytest.raises(ScoringNotSupported, match=r"ft:brand-1 cannot score given text"):
        target_scorer(hosted)


def test_a_hosted_candidate_is_evaluated_and_the_report_says_what_was_not_measured(
    openai_server,  # noqa: F811
    tmp_path,
):
    val = tmp_path / "val.jsonl"
    conversations = [
        [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"r{i}"}]
        for i in range(3)
    ]
    val.write_text("".join(json.dumps({"messages": m}) + "\n" for m in conversations))

    def backend(model: str) -> OpenAIChat:
        return OpenAIChat(base_url=openai_server.base_url, api_key="k", model=model)

    def word_overlap(replies, references):  # type: ignore[no-untyped-def]
        pairs = zip(replies, references, strict=True)
        return [len(set(a.split()) & set(b.split())) / 3 for a, b in pairs]

    report = evaluate(
        val,
        Contender("candidate", backend("ft:brand-1")),
        Contender("v1", backend("ft:brand-0")),
        Contender("base + 0 examples", backend("base")),
        word_overlap,
        general_texts=["Some general text."],
        base=Contender("base model", backend("base")),
    )

    assert report.examples == 3 and report.judge == "closer to reference"
    assert report.val_loss is None and report.forgetting is None
    assert [n.split(":")[0] for n in report.not_measured] == ["validation loss", "forgetting"]
    assert "ft:brand-1 cannot score given text" in report.not_measured[0]
    assert report.samples[0].candidate == "echo: question 0"
    assert report.win_rate.vs_production == 0.5 and not report.verdict.recommend_promote
    assert EvalReport.from_stored(report.to_stored()) == report


def test_production_is_asked_only_what_it_did_not_answer_as_the_candidate(
    openai_server,  # noqa: F811
    tmp_path,
):
    def conversation(i: int) -> list[dict[str, str]]:
        return [
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": f"r{i}"},
        ]

    def evaluate_round(val_rows: int, served: list[str], candidate: str, production: str):  # type: ignore[no-untyped-def]
        val = tmp_path / "val.jsonl"
        val.write_text(
            "".join(json.dumps({"messages": conversation(i)}) + "\n" for i in range(val_rows))
        )

        def contender(label: str, model: str) -> Contender:
            backend = OpenAIChat(base_url=openai_server.base_url, api_key="k", model=model)
            return Contender(label, backend, replies=ReplyCache(tmp_path / f"{model}.jsonl"))

        return evaluate(
            val,
            contender("candidate", candidate),
            contender("production", production),
            contender("base + 0 examples", "base"),
            lambda replies, references: [0.5] * len(replies),
            served=[[{"role": "user", "content": text}] for text in served],
        )

    def asked_of(model: str) -> list[str]:
        requests = openai_server.requests_to("POST", "/v1/chat/completions")
        return sorted(
            r.body["messages"][-1]["content"] for r in requests if r.body["model"] == model
        )

    first = evaluate_round(2, ["served 1"], candidate="ft:brand-1", production="base")
    second = evaluate_round(
        3, ["served 1", "served 2"], candidate="ft:brand-2", production="ft:brand-1"
    )

    assert asked_of("ft:brand-1") == [
        "question 0",
        "question 1",
        "question 2",
        "served 1",
        "served 2",
    ]
    assert asked_of("base") == ["question 0", "question 1", "question 2", "served 1"]
    assert [s.production for s in second.samples[:2]] == [s.candidate for s in first.samples[:2]]
