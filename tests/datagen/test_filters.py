"""Filters on crafted candidates: each drop has its reason, and every filter's score is recorded."""

from __future__ import annotations

import pytest

from brandvoice.datagen.filters import FILTER_ORDER, CandidateFilter, Draft, FilterConfig
from tests.datagen.brand import ANSWERS, PARAPHRASES, PARENTS, SIGN_OFF, VALIDATION_PARENT, chat


@pytest.fixture
def judge(embed, count_tokens) -> CandidateFilter:
    existing = [*PARENTS.items(), ("validation", VALIDATION_PARENT)]
    return CandidateFilter(existing, count_tokens=count_tokens, embed=embed)


def draft(messages, parent="returns", strategy="paraphrase", label="c") -> Draft:
    parent_messages = VALIDATION_PARENT if parent == "validation" else PARENTS[parent]
    return Draft(messages, parent_messages, strategy, label)


def reworded_returns(reply: str) -> list[dict[str, str]]:
    request = PARAPHRASES[PARENTS["returns"][1]["content"]][0]
    return chat(request, reply.removesuffix(f"\n\n{SIGN_OFF}"))


def test_good_variations_pass_every_filter_with_all_scores_recorded(judge):
    drafts = [
        draft(chat(PARAPHRASES[PARENTS[name][1]["content"]][0], ANSWERS[key]), name)
        for name, key in (("returns", "return"), ("shipping", "package"), ("repair", "zip"))
    ]
    verdicts = judge.judge(drafts)
    for verdict in verdicts:
        assert verdict.keep, verdict.scores_dict()
        assert verdict.reason is None
        assert list(verdict.scores) == list(FILTER_ORDER)
        assert all(score.passed for score in verdict.scores.values())
        assert 0 < verdict.score <= 1


def test_an_exact_copy_is_an_exact_duplicate(judge):
    copy = [dict(m) for m in PARENTS["shipping"]]
    copy[1]["content"] = "  " + copy[1]["content"].upper() + " "  # case and spacing don't matter
    (verdict,) = judge.judge([draft(copy, "shipping")])
    assert (verdict.keep, verdict.reason) == (False, "exact_duplicate")
    assert verdict.scores["near_duplicate"].passed is False


def test_a_near_copy_of_a_validation_example_is_a_near_duplicate(judge):
    near = chat(
        "Do you make any of your gear in kids' sizes?",
        "We do. The Sprout rain jacket and the Pinecone daypack come in kids' sizes from 4 to 14. "
        "Both carry the same free repairs for life as all our adult gear.",
    )
    (verdict,) = judge.judge([draft(near, "validation")])
    assert (verdict.keep, verdict.reason) == (False, "near_duplicate")
    assert verdict.scores["near_duplicate"].score > 0.7
    assert verdict.detail.startswith("ROUGE-L") and "example validation" in verdict.detail


def test_a_refusal_is_dropped(judge):
    refusal = reworded_returns(
        "I'm sorry, but I can't help with returns. As an AI language model, I do not have access "
        "to your order history or to the store's return policy, so please ask the store directly."
    )
    (verdict,) = judge.judge([draft(refusal)])
    assert (verdict.keep, verdict.reason) == (False, "refusal")
    assert verdict.scores["refusal"].score >= 2


def test_an_off_topic_answer_is_dropped(judge):
    lasagna = reworded_returns(
        "To make a great lasagna, layer pasta sheets with tomato sauce, ricotta and mozzarella, "
        "then bake at 190°C for 45 minutes and let it rest before slicing."
    )
    (verdict,) = judge.judge([draft(lasagna)])
    assert not verdict.keep
    assert verdict.reason in ("on_topic", "relevance")
    assert verdict.scores["relevance"].score < FilterConfig().min_relevance


def test_a_copy_in_other_words_of_the_whole_parent_is_out_of_the_band(judge, embed):
    config = FilterConfig(bands={"paraphrase": (0.45, 0.9)})
    strict = CandidateFilter(
        list(PARENTS.items()), count_tokens=judge.count_tokens, embed=embed, config=config
    )
    echo = chat(
        "Can I send back a jacket I have worn twice? It just does not fit right.",
        ANSWERS["return"],
    )
    (verdict,) = strict.judge([draft(echo)])
    assert (verdict.keep, verdict.reason) == (False, "on_topic")
    assert verdict.scores["on_topic"].score > 0.9


def test_invented_personal_data_is_redacted_and_dropped(judge):
    leaky = reworded_returns(
        "Yes, you have 60 days to return it, for any reason. Email the label request to "
        "returns.desk@example.com or call 555-123-4567 and we will sort the refund out quickly."
    )
    (verdict,) = judge.judge([draft(leaky)])
    assert (verdict.keep, verdict.reason) == (False, "redaction")
    reply = verdict.messages[-1]["content"]
    assert "<EMAIL>" in reply and "example.com" not in reply
    assert verdict.scores["redaction"].score == 2


def test_too_short_and_malformed_candidates(judge):
    short, broken = judge.judge(
        [draft(reworded_returns("Yes.")), draft([{"role": "user", "content": "Hi"}])]
    )
    assert (short.keep, short.reason) == (False, "length")
    assert (broken.keep, broken.reason) == (False, "format")
    assert broken.score is None and list(broken.scores) == ["format"]


def test_of_two_near_identical_candidates_only_the_first_is_kept(judge):
    request = PARAPHRASES[PARENTS["repair"][1]["content"]][0]
    first = draft(chat(request, ANSWERS["zip"]), "repair", label="parent 3 paraphrase #0")
    second = draft(
        chat(request + " Thanks!", ANSWERS["zip"]), "repair", label="parent 3 paraphrase #1"
    )
    kept, dropped = judge.judge([first, second])
    assert kept.keep
    assert (dropped.keep, dropped.reason) == (False, "near_duplicate")
    assert "parent 3 paraphrase #0" in dropped.detail


def test_a_looping_reply_is_dropped_for_repetition(judge):
    looping = reworded_returns(
        "Yes, you can return it within 60 days. I'm sorry, I couldn't help you more, I'm sorry "
        "I couldn't help you more, I'm sorry I couldn't help you more with the jacket return."
    )
    (verdict,) = judge.judge([draft(looping)])
    assert (verdict.keep, verdict.reason) == (False, "repetition")
    assert verdict.scores["repetition"].score > FilterConfig().max_repetition


def test_an_invented_price_or_policy_is_dropped_unless_the_knowledge_states_it(embed, judge):
    invented = [
        reworded_returns(
            "Yes, you can still send it back within 60 days, even after a few wears. Returns "
            "cost $8 for the label, taken off your refund, which arrives in five business days."
        ),
        reworded_returns(
            "Yes, you can still send it back within 60 days, even after a few wears. You also "
            "get 20% off your next jacket when the refund lands, as a thank-you from the team."
        ),
    ]
    for verdict in judge.judge([draft(messages) for messages in invented]):
        assert (verdict.keep, verdict.reason) == (False, "claims"), verdict.scores_dict()
        assert verdict.scores["claims"].score >= 1
    assert "$8" in judge.judge([draft(invented[0])])[0].detail

    knowing = CandidateFilter(
        list(PARENTS.items()),
        count_tokens=judge.count_tokens,
        embed=embed,
        sources=["Return labels cost $8, taken off the refund."],
    )
    (kept,) = knowing.judge([draft(invented[0])])
    assert kept.keep, kept.scores_dict()
    assert kept.scores["claims"].detail == ""
