"""Unsupported claims in the evaluation: measured per contender, stored and read back, shown the
same on the terminal, in Slack and in HTML, and holding back a candidate that invents claims."""

from __future__ import annotations

import io
import json

from rich.console import Console

from brandvoice.bot.cli.report import report_renderable
from brandvoice.bot.slack.blocks import build_report_blocks
from brandvoice.datagen.claims import unsupported_claims
from brandvoice.inference.openai_chat import OpenAIChat
from brandvoice.store.models import ModelVersion
from brandvoice.trainer.eval_report import (
    SCHEMA_VERSION,
    ClaimExample,
    ClaimRate,
    ContenderScores,
    EvalReport,
    UnsupportedClaims,
    ValidationLoss,
    WinRates,
)
from brandvoice.trainer.evaluate import (
    Contender,
    EvalConfig,
    claim_rate,
    evaluate,
    judge_claims,
    parse_claims,
    verdict,
)
from brandvoice.trainer.report_html import render_report_html
from tests.eval_reports import make_report, old_stored_report
from tests.fakes import FakeResponse, chat_completion, openai_server  # noqa: F401

TENT = ClaimExample(
    reply="So sorry. We'll send you a free tent for life.",
    claim="free tent for life.",
    reason="no source sentence promises 'free' + 'tent'",
)


def claims(candidate_flagged: int, production_flagged: int = 1, replies: int = 8):
    return UnsupportedClaims(
        method="deterministic",
        production=ClaimRate(flagged=production_flagged, replies=replies),
        candidate=ClaimRate(flagged=candidate_flagged, replies=replies, examples=[TENT]),
    )


def held(found: UnsupportedClaims | None, config: EvalConfig | None = None) -> list[str]:
    """The reasons of a verdict on a candidate that is better on everything else."""
    outcome = verdict(
        win_rate=WinRates(vs_production=0.8, vs_baseline=0.9),
        voice_similarity=ContenderScores(candidate=0.6, production=0.5, baseline=0.3),
        val_loss=ValidationLoss(candidate=1.0, production=1.2),
        forgetting=1.1,
        config=config or EvalConfig(),
        claims=found,
    )
    assert outcome.recommend_promote == (not outcome.reasons)
    return outcome.reasons


def evaluate_scripted(server, val, answers: list[str], judge: str | None = None, **options):  # type: ignore[no-untyped-def]
    """``evaluate`` with candidate, production, baseline (and ``judge``) behind the fake server,
    which gives ``answers`` in order; similarity ties every reply."""
    server.script(
        "POST", "/v1/chat/completions", *(FakeResponse(200, chat_completion(a)) for a in answers)
    )

    def backend(model: str) -> OpenAIChat:
        return OpenAIChat(base_url=server.base_url, api_key="k", model=model, concurrency=1)

    return evaluate(
        val,
        Contender("candidate", backend("ft:brand-1")),
        Contender("v1", backend("ft:brand-0")),
        Contender("base + 0 examples", backend("base")),
        lambda replies, references: [0.5 for _ in replies],
        judge=backend(judge) if judge else None,
        **options,
    )


def test_the_verdict_holds_a_candidate_that_clearly_invents_more_claims():
    [reason] = held(claims(candidate_flagged=5))
    assert reason == (
        "makes unsupported claims in 62% (5 of 8 replies) against production's 12% (1 of 8 "
        "replies); clearly worse: at least 2 more flagged replies and a rate at least 10 points "
        "higher"
    )
    assert held(claims(candidate_flagged=3)) != []  # 2 more replies, 25 points
    # One more flagged reply, or 2 more out of many (under 10 points), is not clearly worse.
    assert held(claims(candidate_flagged=2)) == []
    assert held(claims(candidate_flagged=12, production_flagged=10, replies=100)) == []
    assert held(claims(candidate_flagged=0)) == [] and held(None) == []
    assert held(claims(candidate_flagged=3, production_flagged=1, replies=25)) == []  # 8 points
    assert held(claims(candidate_flagged=4, production_flagged=2, replies=20)) != []  # 10 points
    assert held(claims(candidate_flagged=2), EvalConfig(min_extra_claim_replies=1)) != []


def test_claim_rates_count_replies_and_keep_up_to_three_examples():
    replies = [f"You get a free hat number {i}." for i in range(5)] + ["Thanks, happy trails."]
    found = [unsupported_claims(r, ["Thanks for writing."]) for r in replies]
    rate = claim_rate(replies, found, examples=3)
    assert (rate.flagged, rate.replies) == (5, 6)
    assert [e.reply for e in rate.examples] == replies[:3]
    assert rate.examples[0].claim == "free hat number 0."
    assert rate.describe() == "83% (5 of 6 replies)"


def test_the_field_round_trips_and_old_reports_load_without_it():
    report = make_report().model_copy(update={"unsupported_claims": claims(5)})
    stored = json.loads(json.dumps(report.to_stored()))
    assert EvalReport.from_stored(stored) == report
    assert stored["schema_version"] == SCHEMA_VERSION == 4
    assert stored["unsupported_claims"]["candidate"]["examples"][0]["claim"] == TENT.claim
    old = EvalReport.from_stored(old_stored_report())
    assert old is not None and old.unsupported_claims is None
    v3 = {**make_report().to_stored(), "schema_version": 3}
    assert EvalReport.from_stored(v3).unsupported_claims is None  # type: ignore[union-attr]


def test_terminal_slack_and_html_show_the_same_rates_and_examples():
    report = make_report().model_copy(update={"unsupported_claims": claims(5)})
    console = Console(record=True, width=250, file=io.StringIO())
    console.print(report_renderable("v2", report))
    terminal = console.export_text()
    slack = json.dumps(
        build_report_blocks(ModelVersion(name="v2", base_model="base"), report),
        ensure_ascii=False,
    )
    html = render_report_html("v2", report)

    assert "12% (1 of 8 replies)" in terminal and "62% (5 of 8 replies)" in terminal
    assert "*Unsupported-claim rate*\\n12% → *62%* ▲ ⚠️\\n1 → 5 of 8 replies" in slack
    assert "<td>Unsupported-claim rate ↓</td><td>12% (1 of 8 replies)</td>" in html
    assert "<td class='bad'>62% (5 of 8 replies)</td>" in html
    for shown in (terminal, slack, html):
        assert "free tent for life" in shown
        assert "promises &#x27;free&#x27; + &#x27;tent&#x27;" in shown or (
            "promises 'free' + 'tent'" in shown
        )
    without = make_report()
    assert "nsupported" not in render_report_html("v2", without)
    assert "nsupported" not in json.dumps(
        build_report_blocks(ModelVersion(name="v2", base_model="base"), without)
    )


def test_evaluate_checks_each_reply_against_its_reference_prompt_and_knowledge(
    openai_server,  # noqa: F811
    tmp_path,
):
    val = tmp_path / "val.jsonl"
    asked = ["Is the Ridgeline 40 pack waterproof?", "My tent is late.", "Returns?"]
    references = [
        "It's water-resistant, not waterproof.",
        "Sorry. It ships Friday.",
        "You have 60 days.",
    ]
    val.write_text(
        "".join(
            json.dumps(
                {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": r}]}
            )
            + "\n"
            for q, r in zip(asked, references, strict=True)
        )
    )
    invented = [
        "Yes, the Ridgeline 40 pack is waterproof for all rain and snow.",
        "So sorry. We'll send you a free tent for life.",
        "You have 60 days, and shipping is free over $75.",
    ]
    openai_server.script(
        "POST", "/v1/chat/completions", *(FakeResponse(200, chat_completion(a)) for a in invented)
    )

    def backend(model: str) -> OpenAIChat:
        return OpenAIChat(base_url=openai_server.base_url, api_key="k", model=model, concurrency=1)

    def same(replies, references):  # type: ignore[no-untyped-def]
        return [0.5 for _ in replies]

    report = evaluate(
        val,
        Contender("candidate", backend("ft:brand-1")),
        Contender("v1", backend("ft:brand-0")),
        Contender("base + 0 examples", backend("base")),
        same,
        knowledge=["Shipping: free over $75, 3 to 5 business days."],
    )

    found = report.unsupported_claims
    assert found is not None and "the given knowledge" in found.method
    assert (found.candidate.flagged, found.production.flagged) == (2, 0)  # echoes claim nothing
    assert [e.claim for e in found.candidate.examples] == ["waterproof", "free tent for life."]
    assert any("makes unsupported claims in 67%" in r for r in report.verdict.reasons)
    assert EvalReport.from_stored(report.to_stored()) == report


def test_judge_answers_about_claims_are_read_strictly():
    [claim] = parse_claims('{"unsupported": [{"claim": "free tent", "reason": "no source"}]}')
    assert (claim.text, claim.kind, claim.reason) == ("free tent", "judge", "no source")
    assert parse_claims('{"unsupported": []}') == []
    for unreadable in ("none", '{"claims": []}', '{"unsupported": "x"}', '{"unsupported": [1]}'):
        assert parse_claims(unreadable) is None


def test_with_a_judge_its_claims_count_and_an_unreadable_answer_falls_back(
    openai_server,  # noqa: F811
):
    answers = [
        '{"unsupported": [{"claim": "waterproof", "reason": "the reference says it is not"}]}',
        "I cannot tell.",
        '{"unsupported": []}',
    ]
    openai_server.script(
        "POST", "/v1/chat/completions", *(FakeResponse(200, chat_completion(a)) for a in answers)
    )
    judge = OpenAIChat(base_url=openai_server.base_url, api_key="k", model="judge", concurrency=1)
    replies = [
        "Yes, it's waterproof.",
        "We'll send you a free tent for life.",
        "We'll send you a free tent for life.",
    ]
    sources = [["It's water-resistant, not waterproof."], ["It ships Friday."], ["Hi."]]

    found = judge_claims(judge, replies, sources)

    assert [[c.kind for c in f] for f in found] == [["judge"], ["promise", "promise"], []]
    asked = openai_server.requests_to("POST", "/v1/chat/completions")[0].body
    assert "It's water-resistant, not waterproof." in asked["messages"][0]["content"]
    assert asked["temperature"] == 0 and asked["response_format"] == {"type": "json_object"}


def test_evaluate_with_a_judge_asks_it_about_each_reply_of_production_and_candidate(
    openai_server,  # noqa: F811
    tmp_path,
):
    val = tmp_path / "val.jsonl"
    rows = [
        [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "r"}]
        for i in range(2)
    ]
    val.write_text("".join(json.dumps({"messages": m}) + "\n" for m in rows))
    replies = ["A free tent for life.", "Hello."] + ["Hi."] * 4  # candidate, production, baseline
    pairwise = ['{"winner": "A"}'] * 8  # vs production, then vs baseline, in both orders
    claims = ['{"unsupported": []}'] * 2 + [
        '{"unsupported": [{"claim": "free tent", "reason": "invented"}]}',
        '{"unsupported": []}',
    ]  # production's replies, then the candidate's
    report = evaluate_scripted(
        openai_server, val, [*replies, *pairwise, *claims], judge="judge-model"
    )

    found = report.unsupported_claims
    assert found is not None and found.method.startswith("judge judge-model")
    assert (found.production.flagged, found.candidate.flagged) == (0, 1)
    assert found.candidate.examples[0].claim == "free tent"
    assert report.win_rate.vs_production == 0.5  # "A" in both orders is position bias


def test_served_requests_join_the_claims_check_without_a_reference(
    openai_server,  # noqa: F811
    tmp_path,
):
    val = tmp_path / "val.jsonl"
    val.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "My tent is late."},
                    {"role": "assistant", "content": "Sorry, it ships Friday."},
                ]
            }
        )
        + "\n"
    )
    served = [
        [{"role": "user", "content": "Is shipping free?"}],
        [{"role": "user", "content": "Can I get a discount?"}],
    ]
    replies = ["Sorry, it ships Friday."] * 3  # candidate, production, baseline on validation
    on_served = [
        "Shipping is free over $75.",  # production: the knowledge says so
        "Let us check for you.",
        "Shipping is free over $75.",  # candidate
        "Sure, here is 40% off your next order.",
    ]
    report = evaluate_scripted(
        openai_server,
        val,
        [*replies, *on_served],
        knowledge=["Shipping: free over $75, 3 to 5 business days."],
        served=served,
    )

    found = report.unsupported_claims
    assert found is not None and found.served_requests == 2
    assert "2 recent served requests" in found.method
    assert (found.production.describe(), found.candidate.describe()) == (
        "0% (0 of 3 replies)",
        "33% (1 of 3 replies)",
    )
    assert found.candidate.examples[0].reply == "Sure, here is 40% off your next order."
    asked = [r.body for r in openai_server.requests_to("POST", "/v1/chat/completions")]
    assert [a["messages"][-1]["content"] for a in asked[3:]] == [
        "Is shipping free?",
        "Can I get a discount?",
    ] * 2
    assert report.examples == 1, "served requests do not count as validation examples"
    assert "(2 of them served requests)" in json.dumps(
        build_report_blocks(ModelVersion(name="v2", base_model="base"), report)
    )
