"""The one configuration object of a local LoRA run, with defaults chosen by measurement.

The defaults teach a voice from the tens-to-hundreds of examples a team has: lr 1e-3, r=16,
alpha=32, all linear layers, batch 4, cosine with warmup, 6 epochs capped at 48 steps, the adapter
with the lowest validation loss kept (later ones within 5% count as tied). Swept with
``bench/voice_defaults.py`` (results in ``bench/voice_defaults_results.json``) over four brand
sets (26-63 training conversations, test splits of 9-24 never seen by training or selection):
lr 1e-3 / 2e-3 / 3e-3, rank 8 / 16, a 48-step plan, and four stopping rules read from each run
(lowest validation loss, best voice score on the validation prompts, last, and the test-split
oracle). Test-split voice similarity of the shipped defaults, and the gap to the brand's best:
Fizzpop 0.567 (-0.029), Harbor Trust 0.664 (-0.033), Ledgerly 0.415 (-0.095), Pebble & Pine
0.650 (best); sign-off 100%, 100%, (none), 96%. The previous defaults (8 epochs, no cap) were
-0.057, -0.030, best, -0.090 with sign-off 100%, 100%, 88%. No recipe was best on every brand:
each brand's test score moves by 0.03-0.05 between neighbouring evaluations of one run, the
size of every gap above, so the sweep cannot resolve 0.02 with test splits of ~10 prompts.
What it does show: lr 3e-3 and rank 8 are no better anywhere; the voice-score rule (8 greedy
validation replies per evaluation) did not beat validation loss (mean gap -0.026 against -0.025
at lr 1e-3) and costs generation time, so selection stays on validation loss; and the 48-step
cap is what lifted the largest set from 0.560 to 0.650 while bounding training time.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from brandvoice.inference.base_model import DEFAULT_BASE_MODEL

# Settings that may differ between a run and its resumption without changing the result (the
# attention kernel and the padding change rounding only: padded positions are masked out).
RESUMABLE_DIFFERENCES = frozenset(
    {"device", "num_threads", "checkpoint_every", "keep_checkpoints", "attention", "pad_multiple"}
)


class TrainConfig(BaseModel):
    """Hyperparameters and switches for ``train_lora``; invalid combinations fail at construction."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid", frozen=True)

    base_model: str = DEFAULT_BASE_MODEL
    """Model to adapt: the packaged alias, a Hugging Face id, a local directory or a ``*.gguf`` path."""

    lora_r: int = Field(16, ge=1, le=1024)
    """LoRA rank. 16 is enough capacity for a voice; more mostly adds overfitting on small sets."""

    lora_alpha: float = Field(32.0, gt=0)
    """LoRA scale numerator (the update is scaled by alpha / r)."""

    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the LoRA input. Off by default: it copies the input of every adapted layer
    (slower on CPU), and early stopping plus the best-adapter choice already guard overfitting."""

    target_modules: Literal["all-linear"] | tuple[str, ...] = "all-linear"
    """Modules that get adapters: every linear layer except the LM head, or explicit module names."""

    learning_rate: float = Field(1e-3, gt=0, le=1.0)
    """Peak AdamW learning rate. LoRA on small sets needs ~1e-3; 2e-4 does not reach the voice."""

    weight_decay: float = Field(0.0, ge=0.0)
    """AdamW weight decay on the LoRA weights."""

    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    """Learning-rate shape after warmup (``constant`` keeps the warmup)."""

    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    """Fraction of the optimizer steps spent warming the learning rate up from zero."""

    max_grad_norm: float | None = Field(1.0, gt=0)
    """Gradient clipping threshold (global L2 norm); ``None`` disables clipping."""

    epochs: int = Field(6, ge=1)
    """Passes over the training set. Small sets need several passes to pick up a voice; early
    stopping usually ends a run after 4-5 of them (see ``step_cap`` for larger sets)."""

    max_steps: int | None = Field(None, ge=1)
    """Optimizer steps to run; when set it overrides ``epochs`` (more epochs are planned if needed)."""

    step_cap: int | None = Field(48, ge=1)
    """Most optimizer steps an ``epochs`` plan may run: bounds training time on large sets
    while small sets still get their epochs. ``max_steps`` overrides it. 48 steps of 4 examples
    keep training of up to 100 examples under 3 minutes on 2 CPU cores, and in the sweep a
    48-step plan at lr 1e-3 reached the best voice on the 63-example brand (0.650), while the
    uncapped 8-epoch plan stopped early at 64 of 128 steps with 0.560."""

    batch_size: int = Field(4, ge=1)
    """Examples per micro-batch on each device."""

    grad_accum_steps: int = Field(1, ge=1)
    """Micro-batches accumulated per optimizer step; the loss is normalised over all their tokens."""

    max_length: int = Field(1024, ge=16)
    """Tokens kept per example (the start is kept); examples left with nothing to train are dropped."""

    batching: Literal["length_grouped", "packed"] = "length_grouped"
    """``length_grouped`` pads batches of similar length; ``packed`` concatenates each batch into
    one row with positions reset and a block-diagonal mask. Same examples per step either way.
    Length grouping measured faster on CPU (4 brand examples, forward+backward: 3.5 CPU-s padded
    vs 4.7 packed in bf16, 5.0 vs 6.1 in fp32): it pads only ~5%, while the packed row pays for
    attention across the whole row under the block mask."""

    pad_multiple: int | None = Field(None, ge=1)
    """Padded batches are rounded up to a multiple of this many tokens; ``None`` is 32 in bf16
    and 1 in fp32. In bf16 shapes should repeat: on CPU oneDNN builds a kernel for every new bf16
    matmul shape (~1 ms for a LoRA matmul), and length-grouped batches made nearly every step a
    new shape (2 AVX512-BF16 cores, the sample set: 32 trains 4% more tokens/s than 1, 64 11%
    fewer). fp32 matmuls build nothing per shape, so rounding is only padding: on the sample set
    32 pads 13% of positions against 5% and takes 7% more time per step (2 AVX2 cores, the same
    batches alternating in one process)."""

    group_window: int = Field(8, ge=1)
    """Length grouping sorts within shuffled windows of this many micro-batches (seeded)."""

    eval_every: int | None = Field(None, ge=1)
    """Optimizer steps between validation-loss evaluations; ``None`` evaluates once per epoch."""

    patience: int = Field(2, ge=0)
    """Stop after this many evaluations in a row where the validation loss is above its best
    (beyond ``select_tolerance``) while the training loss keeps falling (overfitting); 0 never
    stops early. The kept adapter is the best one, not the last."""

    select_tolerance: float = Field(0.05, ge=0.0, le=1.0)
    """Validation losses within this fraction of the lowest count as tied, and the later adapter
    of a tie is kept. The voice keeps settling for about an epoch after the validation loss
    bottoms out: measured on the sample brand set, sign-off 82% at the lowest loss, 100% one
    epoch later at +2% loss, while 8 full epochs reached +40% loss and lower voice similarity."""

    select_by: Literal["val_loss", "voice"] = "val_loss"
    """Which adapter to keep. ``val_loss``: the lowest validation loss (ties by
    ``select_tolerance``). ``voice``: the highest voice score, from greedy replies to the first
    ``voice_prompts`` validation prompts scored by MiniLM similarity to their references plus
    0.1 x the sign-off rate when the references share a sign-off (``trainer/voice_probe.py``);
    ``patience`` then counts evaluations below the best score."""

    voice_prompts: int = Field(8, ge=1)
    """Validation prompts answered at each voice evaluation (one batch keeps it cheap)."""

    voice_tolerance: float = Field(0.01, ge=0.0, le=1.0)
    """Voice scores within this (absolute) of the best count as tied; the later adapter is kept."""

    context_training: bool = True
    """Train on examples carrying the context that retrieval finds for their request (the example
    itself left out), as replies carry it, so the adapter learns to take facts from the team's
    knowledge rather than invent them (``trainer/context_data.py``). Only where the pipeline is
    given a retriever (knowledge on); validation examples carry their context too."""

    irrelevant_context_share: float = Field(0.2, ge=0.0, lt=1.0)
    """Share of context-trained examples given the context of another request instead, so the
    adapter also learns to answer past context that does not bear on the question."""

    grounded_context_only: bool = True
    """Context-trained examples whose reply states facts their context does not hold (by the
    deterministic claims check: a date, a count, a promise in no retrieved text) train without
    context instead, so no example teaches that a reply with context may go beyond it. On the
    sample brand 21 of 62 training examples go plain. Measured with ``bench/loop_rounds.py``'s
    pipeline on 72 approved examples, seeds 0 and 1, the 24 test prompts as served: replies with
    unsupported claims 25% and 17% against 42% and 50% with every example given context (the
    base model: 29%); voice similarity 0.630 and 0.608 against 0.620 and 0.611."""

    preference_min_pairs: int = Field(20, ge=1)
    """Preference pairs needed before the preference stage runs after SFT; with fewer, DPO's
    margins mostly fit noise, and the run's report says the pairs were not used."""

    preference_epochs: int = Field(4, ge=1)
    """Passes over the training pairs in the preference stage."""

    preference_learning_rate: float = Field(5e-4, gt=0, le=1.0)
    """Peak AdamW learning rate of the preference stage (on the same LoRA weights as SFT).
    Measured with ``bench/preference.py`` (sample brand, 22 corrections + 36 fault pairs): 5e-4
    for 4 epochs with ``preference_sft_weight=2`` took held-out corrections from 0% to 20%
    preferred and voice similarity +0.014; 2e-4 for 3 epochs with weight 1 reached only 10%
    and lost 0.028 of voice similarity."""

    preference_beta: float = Field(0.1, gt=0)
    """DPO's beta: how far from the reference the policy may move for a given margin."""

    preference_sft_weight: float = Field(2.0, ge=0.0)
    """Weight of the chosen reply's per-token NLL added to the DPO loss (RPO); it holds the
    voice while the margins grow (see ``preference_learning_rate`` for the measurement). 0 is
    plain DPO."""

    preference_reference: Literal["sft", "base"] = "sft"
    """Reference log-probabilities, computed once before the stage: the adapter as SFT left it
    (DPO's usual reference) or the base with the adapter disabled."""

    checkpoint_every: int | None = Field(None, ge=1)
    """Optimizer steps between resumable checkpoints; ``None`` checkpoints at every evaluation."""

    keep_checkpoints: int = Field(2, ge=1)
    """Most recent checkpoints kept on disk."""

    seed: int = 0
    """Seeds data order, LoRA initialisation and dropout; the same seed gives the same adapter."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """Where to train; ``auto`` picks CUDA, then MPS, then CPU. Under ``accelerate launch``
    each process uses the GPU accelerate assigns it."""

    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Compute precision (LoRA weights stay fp32); ``auto`` is bf16 autocast on CUDA GPUs that
    support it and on CPUs with native bf16 (AVX512-BF16, AMX), else fp32."""

    attention: Literal["auto", "sdpa", "eager"] = "auto"
    """Attention kernel. ``auto`` on CPU in bf16 picks per batch: eager up to 640 tokens wide
    (where the CPU SDPA backward is slow on short bf16 sequences: 10-20% more time per step),
    SDPA beyond (``lora_model.EAGER_MAX_WIDTH``); elsewhere the model's own (SDPA). Eager runs as
    ``trainer/attention.py``'s grouped-query kernel: the same arithmetic, without repeating keys
    and values. In fp32 SDPA wins even on short sequences: 7% less time per step on the sample
    set (AVX2, 2 threads, the same batches alternating in one process)."""

    num_threads: int | None = Field(None, ge=1)
    """CPU threads for torch; ``None`` leaves torch's default."""

    qlora: bool = False
    """Load the base in 4-bit NF4 (bitsandbytes) and train LoRA on top; CUDA only."""

    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~30% more compute."""

    @model_validator(mode="after")
    def _compatible(self) -> Self:
        if self.qlora and self.device in ("cpu", "mps"):
            raise ValueError(
                f"qlora=True needs a CUDA GPU (bitsandbytes 4-bit), but device={self.device!r}; "
                "set device='cuda' or 'auto', or turn qlora off"
            )
        if self.precision == "bf16" and self.device == "mps":
            raise ValueError("precision='bf16' is not supported on MPS; use 'fp32' or 'auto'")
        if not self.target_modules:
            raise ValueError(
                "target_modules is empty; use 'all-linear' or name at least one module"
            )
        return self

    def hyperparameters(self) -> dict[str, Any]:
        """JSON-ready values, as recorded in the manifest and checkpoints."""
        return self.model_dump(mode="json")

    def resume_mismatches(self, recorded: dict[str, Any]) -> list[str]:
        """Fields that differ from a checkpoint's config and would change the trained result."""
        mine = self.hyperparameters()
        return sorted(
            key
            for key in mine.keys() | recorded.keys()
            if key not in RESUMABLE_DIFFERENCES and mine.get(key) != recorded.get(key)
        )
