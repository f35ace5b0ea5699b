"""LocalChat with the packaged SmolLM2: real generation, left-padded batches, LoRA adapters."""

from __future__ import annotations

import asyncio
import copy
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

from brandvoice.inference import ChatBackend, ChatBackendError, LocalChat, Sampling
from brandvoice.inference.base_model import load_base_model
from brandvoice.inference.chat import ChatDelta, CompletionBackend
from brandvoice.inference.scoring import IGNORE_INDEX, TargetScorer

pytestmark = pytest.mark.slow

GREEDY = Sampling(temperature=0, max_tokens=12)
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name three colors."},
        {"role": "assistant", "content": "Red, green, blue."},
        {"role": "user", "content": "And three animals that live in the sea?"},
    ],
]


FP32 = torch.float32
"""These tests run in fp32, where a padded batch must give exactly the one-by-one replies (bf16,
the default on CPUs with native bf16, rounds differently for differently padded shapes)."""


@pytest.fixture(scope="module")
def chat() -> LocalChat:
    return LocalChat(batch_size=4, dtype=FP32)


@pytest.fixture(scope="module")
def base_replies(chat: LocalChat) -> list[str]:
    return [chat.complete(messages, GREEDY).text for messages in CONVERSATIONS]


@pytest.fixture(scope="module")
def random_adapter(chat: LocalChat, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained LoRA adapter with random weights: enough to change what the model says."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    model = get_peft_model(copy.deepcopy(chat.base.model), config)
    path = tmp_path_factory.mktemp("adapters") / "random-lora"
    model.save_pretrained(path, save_embedding_layers=False)
    return path


def test_greedy_reply_is_deterministic_and_clean(chat, base_replies):
    again = chat.complete(CONVERSATIONS[1], GREEDY)

    assert isinstance(chat, ChatBackend) and not chat.supports_json
    assert again.text == base_replies[1]
    assert "Paris" in again.text
    assert "<|im_end|>" not in again.text and "assistant" not in again.text
    assert again.finish_reason == "stop"
    tokenizer = chat.base.tokenizer
    prompt = tokenizer.apply_chat_template(
        CONVERSATIONS[1], tokenize=False, add_generation_prompt=True
    )
    assert again.usage.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False).input_ids)
    reply_ids = tokenizer(again.text, add_special_tokens=False).input_ids
    assert again.usage.completion_tokens == len(reply_ids) + 1  # + the end-of-turn token


def test_batch_matches_one_by_one(chat, base_replies):
    results = chat.complete_batch(CONVERSATIONS, GREEDY)

    assert len({r.usage.prompt_tokens for r in results}) == 3  # really padded
    assert [r.text for r in results] == base_replies


def test_max_tokens_cuts_the_reply(chat):
    result = chat.complete(CONVERSATIONS[2], Sampling(temperature=0, max_tokens=3))

    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 3


def test_a_raw_text_prompt_is_continued_up_to_its_stop_string(chat):
    """Few-shot completion: no chat template, the pattern is continued and cut at the stop."""
    prompt = "Colors: red, green, blue.\nFruits: apple, pear, plum.\nAnimals:"
    sampling = Sampling(temperature=0, max_tokens=24, stop=("\n",))

    result, longer = chat.complete_text_batch([prompt, prompt + " cat, dog"], sampling)
    unstopped = chat.complete_text_batch([prompt], Sampling(temperature=0, max_tokens=24))[0]

    assert isinstance(chat, CompletionBackend)
    assert result.finish_reason == "stop" and "\n" not in result.text
    assert result.text and unstopped.text.startswith(result.text)
    assert "\n" in unstopped.text, "without the stop string it runs on to the next line"
    assert longer.finish_reason == "stop" and "\n" not in longer.text
    assert result.usage.completion_tokens < 24


def test_a_chat_reply_ends_at_a_stop_string(chat, base_replies):
    word = base_replies[1].split()[1]
    result = chat.complete(CONVERSATIONS[1], replace(GREEDY, stop=(word,)))

    assert result.finish_reason == "stop"
    assert base_replies[1].startswith(result.text) and word not in result.text


def test_sampling_is_reproducible_with_a_seed(chat):
    sampling = Sampling(temperature=1.0, max_tokens=8, seed=1234)

    first = chat.complete(CONVERSATIONS[0], sampling)
    second = chat.complete(CONVERSATIONS[0], sampling)

    assert first.text == second.text


def test_adapter_changes_the_reply_and_switching_back_does_not_reload_the_base(
    chat, base_replies, random_adapter
):
    base = load_base_model(dtype=FP32)
    tuned = LocalChat(adapter=random_adapter, dtype=FP32)

    adapted = tuned.complete_batch(CONVERSATIONS, GREEDY)
    # The base answers as before through another LocalChat sharing the same model.
    assert chat.complete(CONVERSATIONS[1], GREEDY).text == base_replies[1]
    tuned.set_adapter(None)
    back_to_base = tuned.complete(CONVERSATIONS[1], GREEDY)
    tuned.set_adapter(random_adapter)
    adapted_again = tuned.complete(CONVERSATIONS[1], GREEDY)

    assert [r.text for r in adapted] != base_replies
    assert back_to_base.text == base_replies[1]
    assert adapted_again.text == adapted[1].text
    assert tuned.base is chat.base is base
    assert tuned.host.peft_model.base_model.model is base.model
    assert list(tuned.host.adapters) == [random_adapter.resolve()]
    assert tuned.model_name == "smollm2-135m-instruct+random-lora"


def test_a_batch_through_an_adapter_answers_as_the_adapter_and_leaves_the_base_exact(
    chat, base_replies, random_adapter
):
    """Batches run with the adapter merged into the shared base; the base must come back bit for
    bit, or every later reply of the base and of other adapters would drift."""
    base_weights = {k: v.clone() for k, v in chat.base.model.state_dict().items()}
    tuned = LocalChat(adapter=random_adapter, dtype=FP32)

    batch = tuned.complete_batch(CONVERSATIONS, GREEDY)
    one_by_one = [tuned.complete(messages, GREEDY) for messages in CONVERSATIONS]

    assert [r.text for r in batch] == [r.text for r in one_by_one]
    assert [r.text for r in batch] != base_replies
    after = chat.base.model.state_dict()
    assert all(torch.equal(after[k], weight) for k, weight in base_weights.items())
    assert [chat.complete(m, GREEDY).text for m in CONVERSATIONS] == base_replies


def test_concurrent_callers_get_their_own_adapter(chat, base_replies, random_adapter):
    tuned = LocalChat(adapter=random_adapter, dtype=FP32)
    expected_tuned = tuned.complete(CONVERSATIONS[0], GREEDY).text
    jobs = [(chat, base_replies[0]), (tuned, expected_tuned)] * 2

    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(lambda job: job[0].complete(CONVERSATIONS[0], GREEDY).text, jobs))

    assert replies == [expected for _, expected in jobs]


def test_missing_adapter_is_a_clear_error(chat, tmp_path):
    with pytest.raises(ChatBackendError, match=r"no adapter_config\.json"):
        LocalChat(adapter=tmp_path)


def test_stream_arrives_in_pieces_that_add_up_to_the_plain_reply(chat, base_replies):
    async def pieces() -> list[ChatDelta]:
        return [delta async for delta in chat.stream(CONVERSATIONS[1], GREEDY)]

    deltas = asyncio.run(pieces())

    assert len([d for d in deltas if d.text]) > 1
    assert "".join(d.text for d in deltas).strip() == base_replies[1]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage == chat.complete(CONVERSATIONS[1], GREEDY).usage


def test_streams_for_other_adapters_wait_for_the_model_and_keep_their_adapter(
    chat, base_replies, random_adapter
):
    tuned = LocalChat(adapter=random_adapter, dtype=FP32)
    expected_tuned = tuned.complete(CONVERSATIONS[0], GREEDY).text

    async def both() -> list[str]:
        async def text(backend: LocalChat) -> str:
            return "".join([d.text async for d in backend.stream(CONVERSATIONS[0], GREEDY)])

        return await asyncio.gather(text(chat), text(tuned), text(chat), text(tuned))

    replies = [reply.strip() for reply in asyncio.run(both())]

    assert replies == [base_replies[0], expected_tuned] * 2


def test_a_reader_that_leaves_frees_the_model(chat):
    counting = [{"role": "user", "content": "Count from 1 to 300, separated by commas."}]

    async def read_three_pieces() -> None:
        async with aclosing(chat.stream(counting, Sampling(temperature=0, max_tokens=300))) as s:
            pieces = 0
            async for _ in s:
                pieces += 1
                if pieces == 3:
                    break

    asyncio.run(read_three_pieces())
    left = time.monotonic()
    assert chat.host.lock.acquire(timeout=20)
    chat.host.lock.release()
    # 300 tokens take far longer than this on any CPU; generation stopped when the reader left.
    assert time.monotonic() - left < 10


@dataclass(frozen=True)
class Targets:
    input_ids: list[int]
    labels: list[int]


def test_scoring_matches_the_models_own_loss_in_input_order_through_the_adapter(
    chat, random_adapter
):
    import torch

    texts = [
        "Paris is the capital of France, and Rome is the capital of Italy.",
        "Hi there",
        "The quick brown fox jumps over the lazy dog.",
    ]
    ids = [chat.tokenizer(text)["input_ids"] for text in texts]
    examples = [Targets(i, i) for i in ids]
    # Only the last three tokens of the first text are targets.
    examples.append(Targets(ids[0], [IGNORE_INDEX] * (len(ids[0]) - 3) + ids[0][-3:]))

    scores = LocalChat(batch_size=2, dtype=FP32).score_targets(examples)

    assert [s.tokens for s in scores] == [len(i) - 1 for i in ids] + [3]
    with torch.no_grad():
        for score, example in zip(scores, examples, strict=True):
            row = torch.tensor([example.input_ids])
            loss = chat.base.model(input_ids=row, labels=torch.tensor([example.labels])).loss
            assert score.nll == pytest.approx(float(loss) * score.tokens, rel=1e-4)
    assert scores[3].nll < scores[0].nll
    tuned = LocalChat(adapter=random_adapter, dtype=FP32).score_targets(examples)
    assert [s.tokens for s in tuned] == [s.tokens for s in scores]
    assert tuned[0].nll > scores[0].nll * 1.05 and tuned[2].nll > scores[2].nll * 1.05
    # The adapter is off again for the base, scored alone or in another batch.
    assert chat.score_targets(examples[:1])[0].nll == pytest.approx(scores[0].nll, rel=1e-5)
    assert isinstance(chat, TargetScorer)
