"""Kept greedy replies: a model is asked only for prompts it has not answered with those settings."""

from __future__ import annotations

from brandvoice.inference import OpenAIChat, Sampling
from brandvoice.inference.reply_cache import ReplyCache
from tests.fakes import FakeOpenAIServer

GREEDY = Sampling(temperature=0, max_tokens=40)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def asked(server: FakeOpenAIServer) -> list[str]:
    """The prompts the server was asked, sorted: a batch's requests go out concurrently."""
    requests = server.requests_to("POST", "/v1/chat/completions")
    return sorted(r.body["messages"][-1]["content"] for r in requests)


def test_a_greedy_reply_is_asked_once_and_read_back_in_order(openai_server, tmp_path):
    chat = OpenAIChat("brand-1", base_url=openai_server.base_url, api_key="k")
    path = tmp_path / "replies.jsonl"
    ReplyCache(path).complete_batch(chat, [ask("a"), ask("b")], GREEDY)

    later = ReplyCache(path)
    replies = later.complete_batch(chat, [ask("b"), ask("c"), ask("a")], GREEDY)

    assert [r.text for r in replies] == ["echo: b", "echo: c", "echo: a"]
    assert asked(openai_server) == ["a", "b", "c"]
    assert later.reused == 2


def test_other_settings_or_sampled_replies_are_asked_again(openai_server, tmp_path):
    chat = OpenAIChat("brand-1", base_url=openai_server.base_url, api_key="k")
    cache = ReplyCache(tmp_path / "replies.jsonl")
    cache.complete_batch(chat, [ask("a")], GREEDY)

    cache.complete_batch(chat, [ask("a")], Sampling(temperature=0, max_tokens=80))
    cache.complete_batch(chat, [ask("a")], Sampling(temperature=0.7, max_tokens=40))
    cache.complete_batch(chat, [ask("a")], Sampling(temperature=0.7, max_tokens=40))

    assert asked(openai_server) == ["a"] * 4 and cache.reused == 0


def test_a_line_a_crash_cut_short_is_generated_again_and_the_rest_reused(openai_server, tmp_path):
    chat = OpenAIChat("brand-1", base_url=openai_server.base_url, api_key="k")
    path = tmp_path / "replies.jsonl"
    ReplyCache(path).complete_batch(chat, [ask("a"), ask("b")], GREEDY)
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1][:30])

    cache = ReplyCache(path)
    replies = cache.complete_batch(chat, [ask("a"), ask("b")], GREEDY)

    assert [r.text for r in replies] == ["echo: a", "echo: b"]
    assert asked(openai_server) == ["a", "b", "b"] and cache.reused == 1
    again = ReplyCache(path)
    again.complete_batch(chat, [ask("a"), ask("b")], GREEDY)
    assert again.reused == 2, "the reply generated again was kept on a line of its own"
