"""ROUGE-L as Self-Instruct computes it, and the LSH index against the exact pairwise baseline."""

from __future__ import annotations

import random

import pytest

from brandvoice.datagen.neardup import NearDupIndex, naive_matches, rouge_l, rouge_tokens
from tests.datagen.brand import ANSWERS, PARENTS


def test_rouge_l_is_the_lcs_f_measure_over_lowercased_words():
    assert rouge_tokens("The cat, the MAT!") == ["the", "cat", "the", "mat"]
    # LCS "the cat on the mat" = 5 of 6 words each side: F = 2*5 / 12
    assert rouge_l("the cat sat on the mat", "The cat lay on the mat.") == pytest.approx(10 / 12)
    assert rouge_l("", "anything") == 0.0


def corpus(seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    sentences = [s for text in ANSWERS.values() for s in text.split(". ")]
    sentences += [m[-1]["content"] for m in PARENTS.values()]
    vocabulary = sorted({w for s in sentences for w in s.split()})
    texts = [" ".join(rng.sample(sentences, 3)) for _ in range(150)]
    for base in rng.sample(texts, 60):
        words = base.split()
        rate = rng.uniform(0.0, 0.5)
        texts.append(" ".join(rng.choice(vocabulary) if rng.random() < rate else w for w in words))
    return texts


def test_the_index_finds_what_exact_pairwise_rouge_l_finds():
    texts = corpus()
    index = NearDupIndex(0.7)
    truth = found = 0
    for i, text in enumerate(texts):
        expected = set(naive_matches(text, texts[:i]))
        got = {match.key for match in index.matches(text)}
        assert got <= expected, "every reported match is verified exactly"
        truth, found = truth + len(expected), found + len(got)
        index.add(i, text)
    assert truth >= 40
    assert found / truth >= 0.95


def test_best_match_reports_the_exact_score_and_keys_are_unique():
    index = NearDupIndex()
    index.add_many([("a", "free repairs for life on all of our own packs and tents")])
    match = index.best_match("Free repairs for life on all our own packs and tents!")
    assert match is not None and match.key == "a"
    assert match.score == pytest.approx(
        rouge_l(
            "free repairs for life on all of our own packs and tents",
            "Free repairs for life on all our own packs and tents!",
        )
    )
    assert index.best_match("a completely unrelated sentence about the weather in spring") is None
    with pytest.raises(ValueError, match="already holds key 'a'"):
        index.add("a", "anything")
