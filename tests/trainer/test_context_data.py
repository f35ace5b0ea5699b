"""Training examples get the context a reply would get, never their own answer."""

from __future__ import annotations

from brandvoice.inference.retrieval import EXAMPLE
from brandvoice.trainer.context_data import contextualize

SYSTEM = {"role": "system", "content": "You are the team assistant."}


def conversation(request: str, reply: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": request}, {"role": "assistant", "content": reply}]


def test_each_example_gets_its_requests_context_after_the_system_prompt_without_itself():
    asked: list[tuple[str, list[tuple[str, int]]]] = []

    def context_for(query: str, exclude):  # type: ignore[no-untyped-def]
        asked.append((query, list(exclude)))
        return f"Team knowledge for: {query}"

    rows = [conversation(f"question {i}", f"answer {i}") for i in range(4)]
    out, use = contextualize(rows, [10, 11, None, 13], context_for)

    assert [q for q, _ in asked] == [f"question {i}" for i in range(4)]
    assert [x for _, x in asked] == [[(EXAMPLE, 10)], [(EXAMPLE, 11)], [], [(EXAMPLE, 13)]]
    for i, messages in enumerate(out):
        assert messages[0] == SYSTEM
        assert messages[1] == {"role": "system", "content": f"Team knowledge for: question {i}"}
        assert messages[2:] == rows[i][1:]
    assert (use.examples, use.with_context, use.irrelevant) == (4, 4, 0)
    assert rows[0] == conversation("question 0", "answer 0"), "the input is left as it was"


def test_a_share_of_examples_get_another_requests_context_with_both_excluded():
    rows = [conversation(f"question {i}", f"answer {i}") for i in range(40)]
    ids = list(range(100, 140))
    excluded: dict[str, list[tuple[str, int]]] = {}

    def context_for(query: str, exclude):  # type: ignore[no-untyped-def]
        excluded.setdefault(query, []).append(tuple(exclude))
        return f"context of {query}"

    out, use = contextualize(rows, ids, context_for, irrelevant_share=0.25, seed=3)
    swapped = [i for i, m in enumerate(out) if m[1]["content"] != f"context of question {i}"]
    assert use.irrelevant == len(swapped) and 4 <= len(swapped) <= 18
    assert use.with_context == 40
    again, _ = contextualize(rows, ids, context_for, irrelevant_share=0.25, seed=3)
    assert again == out, "the same seed gives the same data"
    for i in swapped:
        other = int(out[i][1]["content"].rsplit(" ", 1)[1])
        assert ((EXAMPLE, ids[i]), (EXAMPLE, ids[other])) in excluded[f"question {other}"]


def test_nothing_retrieved_leaves_the_example_as_it_was():
    rows = [conversation("question", "answer"), [SYSTEM]]
    out, use = contextualize(rows, [1, 2], lambda query, exclude: "")
    assert out == rows and (use.with_context, use.irrelevant) == (0, 0)


def test_grounded_only_keeps_an_example_plain_when_its_reply_states_facts_beyond_its_context():
    rows = [
        conversation(
            "how much is shipping?", "It is a flat $6 under $75, and free on orders of $75 or more."
        ),
        conversation("when does the sale end?", "The sale ends Friday at noon."),
        conversation("thanks!", "Any time. Happy trails."),
    ]

    def context_for(query: str, exclude):  # type: ignore[no-untyped-def]
        return "Shipping: a flat $6 on orders under $75; free on orders of $75 or more."

    out, use = contextualize(rows, [1, 2, 3], context_for, grounded_only=True)

    assert out[0][1]["content"].startswith("Shipping: a flat $6"), "its facts are in the context"
    assert out[1] == rows[1], "'Friday' is in no source: it trains without context"
    assert out[2][1]["role"] == "system", "a reply that states no facts keeps its context"
    assert (use.with_context, use.ungrounded) == (2, 1)
    assert "1 kept plain" in use.describe()
    everything, _ = contextualize(rows, [1, 2, 3], context_for)
    assert all(m[1]["role"] == "system" for m in everything), "off, every example gets context"
