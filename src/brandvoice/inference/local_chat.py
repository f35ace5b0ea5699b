"""Chat with a local transformers model, optionally through a LoRA adapter, without reloading the base.

Every ``LocalChat`` on the same cached base shares one :class:`AdapterHost`: the base is wrapped by
peft once, each adapter directory is loaded once under its own name, and a call only switches the
active adapter. Between calls the adapter layers are disabled, so the cached base still answers as
the plain base model to anyone using it directly. An adapter is loaded on first use and can be
released again (:meth:`LocalChat.release`); whoever keeps backends decides when (see
:class:`~brandvoice.inference.backend_cache.BackendCache`).

Batches generate with the adapter merged into the base for the call (:meth:`AdapterHost.active`),
the base restored exactly afterwards; a streamed reply stays unmerged, so its first token does not
wait for the merge.

A reply streams: ``generate`` runs on a worker thread holding the host's lock (with the adapter set
inside it, so requests for other adapters wait instead of switching it mid-reply) and feeds a
``TextIteratorStreamer`` that the caller reads as text arrives.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from brandvoice.inference.base_model import DEFAULT_BASE_MODEL, LoadedBase, load_base_model
from brandvoice.inference.chat import (
    ChatDelta,
    ChatResult,
    Messages,
    Sampling,
    Usage,
    collect_deltas,
    cut_at_stop,
    stream_from_thread,
)
from brandvoice.inference.errors import ChatBackendError
from brandvoice.inference.scoring import IGNORE_INDEX, TargetScore, TokenTargets

GENERATION_BATCH = 16
"""Prompts generated together. Decoding a small model on CPU costs about the same per step for 8
rows as for 16, so an evaluation's 16 validation prompts (120 new tokens, retrieved context,
2 cores, bf16) took 20.6 and 23.0 s in one batch against 28.4 s in two batches of 8."""


class AdapterHost:
    """The shared state of one loaded base: its peft wrapper, loaded adapters, and one lock."""

    def __init__(self, base: LoadedBase) -> None:
        self.base = base
        self.lock = threading.RLock()
        self.peft_model: Any = None
        self._names: dict[Path, str] = {}
        self._bytes: dict[Path, int] = {}
        self._loads = 0

    @property
    def adapters(self) -> dict[Path, str]:
        """Loaded adapter directories and their peft adapter names."""
        return dict(self._names)

    def adapter_bytes(self, adapter_dir: Path) -> int:
        """Memory the loaded adapter's weights take (0 when it is not loaded)."""
        return self._bytes.get(adapter_dir, 0)

    def unload(self, adapter_dir: Path) -> None:
        """Free a loaded adapter's weights; a later call through it loads it again."""
        with self.lock:
            name = self._names.pop(adapter_dir, None)
            self._bytes.pop(adapter_dir, None)
            if name is not None:
                self.peft_model.delete_adapter(name)

    def _load(self, adapter_dir: Path) -> str:
        from peft import PeftModel

        if adapter_dir in self._names:
            return self._names[adapter_dir]
        if not (adapter_dir / "adapter_config.json").is_file():
            raise ChatBackendError(
                f"{adapter_dir} is not a peft adapter directory (no adapter_config.json)"
            )
        self._loads += 1
        name = f"a{self._loads}_" + re.sub(r"\W", "_", adapter_dir.name)
        try:
            if self.peft_model is None:
                self.peft_model = PeftModel.from_pretrained(
                    self.base.model, str(adapter_dir), adapter_name=name, is_trainable=False
                )
            else:
                self.peft_model.load_adapter(str(adapter_dir), adapter_name=name)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ChatBackendError(
                f"cannot load adapter {adapter_dir} onto {self.base.name}: {exc}"
            ) from exc
        self.peft_model.eval()
        self.peft_model.base_model.disable_adapter_layers()
        self._names[adapter_dir] = name
        marker = f".{name}."
        weights = [p for key, p in self.peft_model.named_parameters() if marker in key]
        base_dtype = next(self.base.model.parameters()).dtype
        for weight in weights:
            # peft upcasts adapters to fp32 for training; served on a bf16 base, that casts every
            # adapted layer's input to fp32 and back (10 prompts: 120 tokens in 22.9 s against
            # 17.8 s in bf16). Training ran the LoRA matmuls in bf16 under autocast, so bf16
            # weights compute what it learned.
            weight.data = weight.data.to(base_dtype)
        self._bytes[adapter_dir] = sum(w.numel() * w.element_size() for w in weights)
        return name

    @contextmanager
    def active(self, adapter_dir: Path | None, merged: bool = False) -> Iterator[Any]:
        """Hold the lock with ``adapter_dir`` (or no adapter) active; yields the model to call:
        the transformers model with the adapter's layers switched on, not peft's wrapper, whose
        forward hides ``logits_to_keep`` from ``generate``: the LM head then ran over every
        prompt token (a fifth of an adapter's prefill time in the profile).

        ``merged`` folds the adapter into the base weights for the block (0.2 s each way), which
        pays off over a batch: an unmerged LoRA's extra small matmuls cost about 40% per decode
        step. 32 prompts with retrieved context, 120 new tokens, 2 cores, bf16: 30 s merged against
        41 s unmerged; the merged weights score the same (validation NLL 2.285 against 2.286,
        training 1.607 against 1.605), though bf16 rounding makes some greedy replies part ways.
        The base weights are copied back afterwards rather than unmerged by subtraction, which in
        bf16 would leave rounding error in the shared base after every call."""
        with self.lock:
            if adapter_dir is None:
                yield self.base.model
                return
            name = self._load(adapter_dir)
            self.peft_model.set_adapter(name, inference_mode=True)
            self.peft_model.base_model.enable_adapter_layers()
            saved = self._merge(name) if merged else {}
            try:
                yield self.peft_model.get_base_model()
            finally:
                if saved:
                    self.peft_model.unmerge_adapter()
                    with torch.no_grad():
                        for weight, original in saved.items():
                            weight.copy_(original)
                self.peft_model.base_model.disable_adapter_layers()

    def _merge(self, name: str) -> dict[torch.Tensor, torch.Tensor]:
        """Merge adapter ``name`` into the base weights; returns each changed weight's original."""
        from peft.tuners.lora import LoraLayer

        saved = {
            layer.get_base_layer().weight: layer.get_base_layer().weight.detach().clone()
            for layer in self.peft_model.modules()
            if isinstance(layer, LoraLayer) and name in layer.lora_A
        }
        self.peft_model.merge_adapter([name])
        return saved


_hosts: dict[int, AdapterHost] = {}
_hosts_lock = threading.Lock()


def adapter_host(base: LoadedBase) -> AdapterHost:
    """The one host per loaded base model object."""
    with _hosts_lock:
        host = _hosts.get(id(base.model))
        if host is None or host.base.model is not base.model:
            host = _hosts[id(base.model)] = AdapterHost(base)
        return host


class LocalChat:
    """A :class:`~brandvoice.inference.chat.ChatBackend` on a local model; JSON output is not enforced.

    It is also a :class:`~brandvoice.inference.scoring.TargetScorer`: it scores given tokens
    through its adapter, which evaluation uses for validation loss and forgetting.
    """

    supports_json = False

    def __init__(
        self,
        base_model: str = DEFAULT_BASE_MODEL,
        adapter: str | Path | None = None,
        *,
        device: str | None = None,
        dtype: Any = None,
        batch_size: int = GENERATION_BATCH,
        model_name: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.base = load_base_model(base_model, device=device, dtype=dtype)
        self.host = adapter_host(self.base)
        self.batch_size = batch_size
        self._custom_name = model_name
        self.adapter: Path | None = None
        self.set_adapter(adapter)

    @property
    def model_name(self) -> str:
        if self._custom_name:
            return self._custom_name
        if self.adapter is None:
            return self.base.name
        return f"{self.base.name}+{self.adapter.name}"

    @property
    def adapter_bytes(self) -> int:
        """Memory this backend's adapter holds while loaded (0 for the plain base)."""
        return 0 if self.adapter is None else self.host.adapter_bytes(self.adapter)

    def release(self) -> None:
        """Free the adapter's weights (the base stays); the next call loads it again."""
        if self.adapter is not None:
            self.host.unload(self.adapter)

    def set_adapter(self, adapter: str | Path | None) -> None:
        """Answer through ``adapter`` from now on (``None``: the base); loads it once, never the base."""
        if adapter is None:
            self.adapter = None
            return
        path = Path(adapter).expanduser().resolve()
        with self.host.lock:
            self.host._load(path)
        self.adapter = path

    @property
    def tokenizer(self) -> Any:
        return self.base.tokenizer

    def score_targets(
        self, examples: Sequence[TokenTargets], batch_size: int = 8
    ) -> list[TargetScore]:
        """Per example, the summed negative log-likelihood of its labelled tokens through this
        backend's adapter; batches of similar length, in input order."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
        scores: list[TargetScore | None] = [None] * len(examples)
        with self.host.active(self.adapter) as model, torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                batch = [examples[i] for i in chunk]
                for index, score in zip(chunk, _score_batch(model, batch), strict=True):
                    scores[index] = score
        return [s for s in scores if s is not None]

    def stream(
        self, messages: Messages, sampling: Sampling | None = None
    ) -> AsyncIterator[ChatDelta]:
        chosen = sampling or Sampling()
        return stream_from_thread(lambda stop: self._deltas(messages, chosen, stop))

    def complete(self, messages: Messages, sampling: Sampling | None = None) -> ChatResult:
        """One reply; generation ends at a stop string, which is cut from the text (a stream
        ends there too but may already have sent the stop string's first pieces)."""
        sampling = sampling or Sampling()
        result = collect_deltas(
            self._deltas(messages, sampling, threading.Event()), self.model_name
        )
        text, stopped = cut_at_stop(result.text, sampling.stop)
        if not stopped:
            return result
        return ChatResult(text.strip(), result.usage, result.model, "stop")

    def _deltas(
        self, messages: Messages, sampling: Sampling, stop: threading.Event
    ) -> Iterator[ChatDelta]:
        """Text as the model writes it, then a last delta with the counts; ``stop`` ends it early."""
        tokenizer = self.base.tokenizer
        prompt = tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
        )
        inputs = tokenizer([prompt], return_tensors="pt", add_special_tokens=False).to(
            self.base.device
        )
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        options = self._generation_options(sampling)
        criteria: list[StoppingCriteria] = [_Stop(stop)]
        if sampling.stop:
            criteria.append(_StopStrings(tokenizer, sampling.stop, inputs["input_ids"].shape[1]))
        options.update(streamer=streamer, stopping_criteria=StoppingCriteriaList(criteria))
        outcome: dict[str, Any] = {}

        def generate() -> None:
            try:
                with self.host.active(self.adapter) as model:
                    if stop.is_set():
                        streamer.end()
                        return
                    with _seeded(sampling.seed, self.base.device), torch.inference_mode():
                        outcome["output"] = model.generate(**inputs, **options)
            except BaseException as exc:  # raised again by the reader below
                outcome["error"] = exc
                streamer.end()

        worker = threading.Thread(target=generate, name="local-chat-generate", daemon=True)
        worker.start()
        started = finished = False
        try:
            for text in streamer:
                if not started:
                    text = text.lstrip()
                    started = bool(text)
                if text:
                    yield ChatDelta(text, model=self.model_name)
            finished = True
        finally:
            if not finished:  # the reader left early: stop generating
                stop.set()
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        if "output" not in outcome:
            return
        prompt_len = inputs["input_ids"].shape[1]
        generated = outcome["output"][0][prompt_len:].tolist()
        final = _decode(
            tokenizer, generated, _stop_token_ids(self.base), prompt_len, "", sampling.stop
        )
        yield ChatDelta("", final.finish_reason, final.usage, self.model_name)

    def complete_batch(
        self, conversations: Sequence[Messages], sampling: Sampling | None = None
    ) -> list[ChatResult]:
        """Replies in input order; generated ``batch_size`` at a time, similar lengths together."""
        tokenizer = self.base.tokenizer
        prompts = [
            tokenizer.apply_chat_template(
                [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
            )
            for messages in conversations
        ]
        return self.complete_text_batch(prompts, sampling)

    def complete_text_batch(
        self, prompts: Sequence[str], sampling: Sampling | None = None
    ) -> list[ChatResult]:
        """Continuations of raw text prompts (no chat template), in input order, batched like
        :meth:`complete_batch`; each stops at its first ``sampling.stop`` string."""
        sampling = sampling or Sampling()
        if not prompts:
            return []
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[ChatResult | None] = [None] * len(prompts)
        with self.host.active(self.adapter, merged=True) as model:
            seeded = _seeded(sampling.seed, self.base.device)
            with seeded, torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start : start + self.batch_size]
                    for index, result in zip(
                        chunk,
                        self._generate(model, [prompts[i] for i in chunk], sampling),
                        strict=True,
                    ):
                        results[index] = result
        return [r for r in results if r is not None]

    def _generate(self, model: Any, prompts: list[str], sampling: Sampling) -> list[ChatResult]:
        tokenizer = self.base.tokenizer
        inputs = tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=False,
        ).to(self.base.device)
        stop_ids = _stop_token_ids(self.base)
        prompt_len = inputs["input_ids"].shape[1]
        options = self._generation_options(sampling)
        if sampling.stop:
            stop = _StopStrings(tokenizer, sampling.stop, prompt_len)
            options["stopping_criteria"] = StoppingCriteriaList([stop])
        output = model.generate(**inputs, **options)
        prompt_counts = inputs["attention_mask"].sum(dim=1).tolist()
        return [
            _decode(
                tokenizer,
                row[prompt_len:].tolist(),
                stop_ids,
                count,
                self.model_name,
                sampling.stop,
            )
            for row, count in zip(output, prompt_counts, strict=True)
        ]

    def _generation_options(self, sampling: Sampling) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "pad_token_id": self.base.tokenizer.pad_token_id,
            "eos_token_id": _stop_token_ids(self.base),
        }
        if sampling.temperature > 0:
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return options


class _Stop(StoppingCriteria):
    """A stopping criterion that ends generation once the reader has gone away."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.stop.is_set(), dtype=torch.bool)


class _StopStrings(StoppingCriteria):
    """Ends each row once its generated text contains a stop string. transformers' own
    ``stop_strings`` preprocesses the whole vocabulary on every call (measured: 8 rows of at most
    64 tokens took 68 s with it and 21 s without on 2 cores); decoding each row's last few tokens
    costs next to nothing."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_len: int) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_len = prompt_len
        self.window = max(len(s) for s in self.stops) + 2
        """Tokens decoded per check: a stop string of n characters spans at most n tokens."""

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        start = max(self.prompt_len, input_ids.shape[1] - self.window)
        tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
        done = [any(s in tail for s in self.stops) for tail in tails]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _score_batch(causal_lm: Any, examples: Sequence[TokenTargets]) -> list[TargetScore]:
    """Right-padded forward pass; the vocabulary projection runs only at target positions,
    which keeps memory at (targets x vocabulary) instead of (tokens x vocabulary)."""
    width = max(len(e.input_ids) for e in examples)
    device = causal_lm.device
    ids = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(list(example.input_ids), dtype=torch.long)
        labels[row, :n] = torch.tensor(list(example.labels), dtype=torch.long)
        attention[row, :n] = 1
    ids, labels, attention = ids.to(device), labels.to(device), attention.to(device)
    decoder = getattr(causal_lm, causal_lm.base_model_prefix)
    hidden = decoder(input_ids=ids, attention_mask=attention, use_cache=False).last_hidden_state
    targets = labels[:, 1:]
    scored = targets != IGNORE_INDEX
    logits = causal_lm.get_output_embeddings()(hidden[:, :-1][scored])
    nll = F.cross_entropy(logits.float(), targets[scored], reduction="none")
    per_row = torch.zeros(len(examples), dtype=torch.float64)
    per_row.index_add_(0, scored.nonzero()[:, 0].cpu(), nll.double().cpu())
    counts = scored.sum(dim=1).tolist()
    return [
        TargetScore(float(total), int(count))
        for total, count in zip(per_row.tolist(), counts, strict=True)
    ]


def _stop_token_ids(base: LoadedBase) -> list[int]:
    """End-of-turn ids: the tokenizer's eos plus whatever the model's generation config lists."""
    ids = {base.tokenizer.eos_token_id}
    configured = getattr(base.model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


def _decode(
    tokenizer: Any,
    generated: list[int],
    stop_ids: list[int],
    prompt_tokens: int,
    model: str,
    stop_strings: Sequence[str] = (),
) -> ChatResult:
    """Text up to the first end-of-turn token or stop string; the stop token counts as
    generated, not as text. The text is cut at a stop string after decoding, since a stop
    string may span tokens (generation itself stops there through ``stop_strings``)."""
    stop = next((i for i, token in enumerate(generated) if token in stop_ids), None)
    kept = generated if stop is None else generated[:stop]
    text, stopped = cut_at_stop(tokenizer.decode(kept, skip_special_tokens=True), stop_strings)
    return ChatResult(
        text=text.strip(),
        usage=Usage(prompt_tokens, len(generated) if stop is None else stop + 1),
        model=model,
        finish_reason="stop" if stop is not None or stopped else "length",
    )


@contextmanager
def _seeded(seed: int | None, device: str) -> Iterator[None]:
    """Sampling reproducible for a seed, without disturbing anyone else's random state."""
    if seed is None:
        yield
        return
    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
