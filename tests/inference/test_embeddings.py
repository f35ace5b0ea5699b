"""Embeddings from the packaged all-MiniLM-L6-v2, loaded without any network."""

from __future__ import annotations

import numpy as np
import pytest

from brandvoice.inference import cosine_similarity, embed_texts

pytestmark = pytest.mark.slow


def test_vectors_are_unit_length_rows():
    vectors = embed_texts(["Thanks for reaching out!", "Our office opens at nine."])

    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embed_texts([]).shape == (0, 384)


def test_similar_sentences_score_higher_than_unrelated_ones():
    scores = cosine_similarity(
        ["The cat sat on the mat.", "The cat sat on the mat.", "Happy to help, cheers!"],
        [
            "A cat was sitting on a rug.",
            "Quarterly revenue grew by five percent.",
            "Glad to help, cheers!",
        ],
    )

    similar, unrelated, same_voice = scores
    assert similar > 0.5 > unrelated
    assert same_voice > 0.8
    assert all(-1.0 <= s <= 1.0 + 1e-6 for s in scores)


def test_pairs_must_line_up():
    with pytest.raises(ValueError, match="got 2 and 1 texts"):
        cosine_similarity(["a", "b"], ["a"])
