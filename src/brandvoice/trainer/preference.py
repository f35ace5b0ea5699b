"""The preference stage: DPO on the SFT adapter, in the same fit loop as supervised training.

Pairs come from the team (a correction: the person's reply is chosen, the model's rejected; a 👎
reply later answered well). The loss is DPO's sigmoid loss (Rafailov et al. 2023, eq. 7; TRL's
``loss_type="sigmoid"``) on summed reply log-probabilities, plus ``preference_sft_weight`` x the
chosen reply's per-token NLL (RPO, Pang et al. 2024; TRL's ``rpo_alpha``), which keeps the voice
from drifting while the margins grow. The reference model is never loaded twice: its
log-probabilities are computed once, before the first step (TRL's ``precompute_ref_log_probs``),
either with the adapter as SFT left it (``preference_reference="sft"``, DPO's usual reference) or
with the adapter disabled (``"base"``). A step then costs one forward and backward over both sides
of its pairs, in a single padded batch.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from brandvoice.trainer import checkpoint as ckpt
from brandvoice.trainer.callbacks import TrainCallback
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.lora import (
    TrainResult,
    finish_step,
    fit_stage,
    progress_hooks,
    record_eval,
    restore_checkpoint,
    save_stage_checkpoint,
    scheduler_for,
    steps_per_epoch,
)
from brandvoice.trainer.lora_model import (
    TargetTokenLoss,
    adapter_state,
    disable_input_casting,
    dropout_active,
    pad_multiple_for,
    target_logits,
    torch_threads,
    use_bf16,
)
from brandvoice.trainer.preference_data import (
    PreferenceLike,
    TokenizedPair,
    TokenizedPairs,
    collate_pairs,
    tokenize_pairs,
)
from brandvoice.trainer.sft_data import plan_steps

log = logging.getLogger(__name__)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair sigmoid DPO loss and implicit reward margin, from summed reply log-probabilities:
    ``-log sigmoid(beta * ((pc - rc) - (pr - rr)))``."""
    margin = beta * ((policy_chosen - reference_chosen) - (policy_rejected - reference_rejected))
    return -F.logsigmoid(margin), margin


class ReplyLogProbs(TargetTokenLoss):
    """Summed log-probability of each row's labelled tokens, and their count per row."""

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, targets, mask = target_logits(self.model, input_ids, labels, attention_mask)
        token_logps = -F.cross_entropy(logits.float(), targets, reduction="none")
        rows = mask.nonzero()[:, 0]
        sums = torch.zeros(input_ids.shape[0], device=token_logps.device, dtype=token_logps.dtype)
        return sums.index_add(0, rows, token_logps), mask.sum(dim=1)


@dataclass
class PreferenceRun:
    """What the fit loop (``trainer.lora.fit_stage``) drives for the preference stage."""

    config: TrainConfig
    accelerator: Any
    loss_module: nn.Module
    optimizer: Any
    scheduler: Any
    params: list[nn.Parameter]
    train: TokenizedPairs
    val: TokenizedPairs | None
    plan: list[list[list[int]]]
    reference: dict[str, torch.Tensor]
    """``train`` and ``val``: reference log-probabilities, shape (pairs, 2): chosen, rejected."""
    pad_id: int = 0
    bf16: bool = False
    initial: dict[str, float] = field(default_factory=dict)

    def autocast(self) -> Any:
        device_type = self.accelerator.device.type
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16)

    def logps(self, pairs: Sequence[TokenizedPair]) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy log-probabilities (pairs, 2) and the chosen replies' token counts."""
        batch = collate_pairs(pairs, self.pad_id, pad_multiple_for(self.config, self.bf16))
        batch = {k: v.to(self.accelerator.device) for k, v in batch.items()}
        with self.autocast():
            sums, counts = self.loss_module(**batch)
        n = len(pairs)
        return torch.stack([sums[:n], sums[n:]], dim=1), counts[:n]

    def objective(
        self, logps: torch.Tensor, counts: torch.Tensor, reference: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed (DPO + weighted chosen NLL) over the pairs, and the reward margins."""
        beta = self.config.preference_beta
        losses, margins = dpo_loss(logps[:, 0], logps[:, 1], reference[:, 0], reference[:, 1], beta)
        nll = -logps[:, 0] / counts.clamp(min=1)
        return (losses + self.config.preference_sft_weight * nll).sum(), margins

    def step(self, fit: ckpt.FitState) -> dict[str, float]:
        acc = self.accelerator
        micro = self.plan[fit.step][acc.process_index :: acc.num_processes]
        step_pairs = sum(len(batch) for batch in self.plan[fit.step])
        loss_sum, correct, tokens = torch.zeros((), device=acc.device), 0, 0
        for index, indices in enumerate(micro):
            pairs = [self.train.pairs[i] for i in indices]
            with nullcontext() if index == len(micro) - 1 else acc.no_sync(self.loss_module):
                logps, counts = self.logps(pairs)
                summed, margins = self.objective(logps, counts, self.reference["train"][indices])
                acc.backward(summed * acc.num_processes / step_pairs)
            loss_sum += summed.detach()
            correct += int((margins > 0).sum())
            tokens += sum(p.chosen.n_targets + p.rejected.n_targets for p in pairs)
        metrics = finish_step(self, fit, loss_sum, step_pairs, tokens)
        return metrics | {"reward_accuracy": correct / step_pairs}

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.plan, len(self.train.pairs))

    def score(self, split: str) -> dict[str, float]:
        """Loss, reward accuracy and preference accuracy (chosen more likely than rejected)."""
        data = self.train if split == "train" else self.val
        assert data is not None
        was_training = self.loss_module.training
        self.loss_module.eval()
        total, rewarded, preferred = 0.0, 0, 0
        size = 2 * self.config.batch_size
        with torch.no_grad():
            for start in range(0, len(data.pairs), size):
                indices = list(range(start, min(start + size, len(data.pairs))))
                logps, counts = self.logps([data.pairs[i] for i in indices])
                summed, margins = self.objective(logps, counts, self.reference[split][indices])
                total += summed.item()
                rewarded += int((margins > 0).sum())
                preferred += int((logps[:, 0] > logps[:, 1]).sum())
        self.loss_module.train(was_training)
        n = max(len(data.pairs), 1)
        return {"loss": total / n, "reward_accuracy": rewarded / n, "accuracy": preferred / n}

    def evaluate(
        self, fit: ckpt.FitState, best: dict[str, torch.Tensor] | None
    ) -> tuple[dict[str, float], dict[str, torch.Tensor] | None, bool]:
        scores = self.score("val")
        train_loss = fit.window_loss_sum / max(fit.window_tokens, 1)
        fit.window_loss_sum, fit.window_tokens = 0.0, 0
        keep, overfitting = record_eval(fit, scores["loss"], train_loss, self.config.patience)
        fit.evals[-1] |= {f"preference_{k}": v for k, v in scores.items()}
        if keep:
            best = adapter_state(self.accelerator.unwrap_model(self.loss_module).model)
        metrics = fit.evals[-1] | {"best_eval_loss": fit.best_eval_loss, "is_best": float(keep)}
        return metrics, best, overfitting

    def save_checkpoint(
        self, output_dir: Path, fit: ckpt.FitState, best: dict[str, torch.Tensor] | None
    ) -> None:
        directory = output_dir / ckpt.PREFERENCE_CHECKPOINTS
        save_stage_checkpoint(self, directory, fit, best, self.train.fingerprint())

    def data_counts(self) -> dict[str, int]:
        return {
            "train_pairs": len(self.train.pairs),
            "val_pairs": len(self.val.pairs) if self.val else 0,
            "dropped_pairs": self.train.dropped,
        }


def reference_logps(run: PreferenceRun, pairs: TokenizedPairs, reference: str) -> torch.Tensor:
    """The reference model's log-probabilities (pairs, 2), computed once without gradients."""
    model = run.accelerator.unwrap_model(run.loss_module).model
    disabled = model.disable_adapter() if reference == "base" else nullcontext()
    was_training = run.loss_module.training
    run.loss_module.eval()
    rows = []
    with disabled, torch.no_grad():
        size = 2 * run.config.batch_size
        for start in range(0, len(pairs.pairs), size):
            logps, _ = run.logps(pairs.pairs[start : start + size])
            rows.append(logps.float())
    run.loss_module.train(was_training)
    return torch.cat(rows) if rows else torch.zeros((0, 2))


def prepare_preference_run(
    sft_loss_module: nn.Module,
    accelerator: Any,
    config: TrainConfig,
    train_records: Sequence[PreferenceLike],
    val_records: Sequence[PreferenceLike],
    tokenizer: Any,
    bf16: bool,
) -> PreferenceRun | None:
    """The preference stage on the adapter SFT left in ``sft_loss_module``; None when there are
    fewer usable training pairs than ``config.preference_min_pairs``."""
    train = tokenize_pairs(train_records, tokenizer, config.max_length)
    if len(train.pairs) < max(config.preference_min_pairs, 1):
        return None
    val = tokenize_pairs(val_records, tokenizer, config.max_length) if val_records else None
    if val is not None and not val.pairs:
        val = None
    model = accelerator.unwrap_model(sft_loss_module).model
    params = [p for p in model.parameters() if p.requires_grad]
    plan = plan_steps(
        train.lengths, batch_size=config.batch_size, grad_accum_steps=config.grad_accum_steps,
        epochs=config.preference_epochs, max_steps=None, seed=config.seed,
        group_window=config.group_window, num_processes=accelerator.num_processes,
    )  # fmt: skip
    optimizer = torch.optim.AdamW(params, lr=config.preference_learning_rate, weight_decay=0.0)
    scheduler = scheduler_for(config, optimizer, len(plan))
    loss_module, optimizer = accelerator.prepare(ReplyLogProbs(model), optimizer)
    loss_module.train(sft_loss_module.training)
    pad_id = tokenizer.pad_token_id or 0
    run = PreferenceRun(
        config, accelerator, loss_module, optimizer, scheduler, params, train, val, plan,
        reference={}, pad_id=pad_id, bf16=bf16,
    )  # fmt: skip
    run.reference["train"] = reference_logps(run, train, config.preference_reference)
    if val is not None:
        run.reference["val"] = reference_logps(run, val, config.preference_reference)
        run.initial = {f"preference_{k}": v for k, v in run.score("val").items()}
    return run


def remove_preference_checkpoints(output_dir: Path) -> None:
    shutil.rmtree(output_dir / ckpt.PREFERENCE_CHECKPOINTS, ignore_errors=True)


def train_preference(
    adapter_dir: str | Path,
    output_dir: str | Path,
    preferences: tuple[Sequence[PreferenceLike], Sequence[PreferenceLike]],
    config: TrainConfig | None = None,
    callbacks: TrainCallback | Sequence[TrainCallback] | None = None,
    *,
    base_model: nn.Module | None = None,
    resume_from: str | Path | None = None,
) -> TrainResult:
    """The preference stage alone, on an adapter already trained (by ``train_lora``): the new
    adapter and a manifest whose ``preference`` says what was used go to ``output_dir``.
    ``resume_from`` is a run directory where this stage was interrupted (its checkpoints)."""
    from accelerate import Accelerator
    from peft import PeftModel

    from brandvoice.inference.base_model import (
        load_fresh_base_model,
        load_tokenizer,
        pick_device,
    )

    config = config or TrainConfig()
    output_dir = Path(output_dir)
    hooks = progress_hooks(callbacks)
    with torch_threads(config.num_threads):
        device = pick_device(None if config.device == "auto" else config.device)
        bf16 = use_bf16(config, device)
        accelerator = Accelerator(cpu=device == "cpu", device_placement=False)
        dtype = torch.bfloat16 if bf16 else torch.float32
        base = base_model if base_model is not None else load_fresh_base_model(config.base_model)
        base = base.to(device=device, dtype=dtype)
        model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=True)
        if bf16:
            disable_input_casting(model)
        sft = TargetTokenLoss(model)
        sft.train(dropout_active(model))
        tokenizer = load_tokenizer(config.base_model)
        train_pairs, val_pairs = preferences
        stage = prepare_preference_run(
            sft, accelerator, config, train_pairs, val_pairs, tokenizer, bf16
        )
        if stage is None:
            raise ValueError(
                f"{len(train_pairs)} training pairs, fewer than preference_min_pairs="
                f"{config.preference_min_pairs}: nothing to train"
            )
        fit, best, resumed = ckpt.FitState(), None, None
        if resume_from is not None:
            fit, best, resumed = restore_stage(stage, resume_from)
        result = fit_stage(stage, fit, best, resumed, output_dir, hooks, None)
        if result.status == "cancelled":
            return result
        remove_preference_checkpoints(output_dir)
        manifest = result.manifest | {"preference": preference_summary(stage, result)}
        ckpt.write_manifest(output_dir, manifest)
        return replace(result, manifest=manifest)


def restore_stage(
    stage: PreferenceRun, run_dir: str | Path
) -> tuple[ckpt.FitState, dict[str, torch.Tensor] | None, dict[str, Any]]:
    """Continue ``stage`` from the newest preference checkpoint in ``run_dir``; the same pairs
    and settings are required, as for supervised training."""
    found = ckpt.preference_checkpoint(run_dir)
    if found is None:
        raise FileNotFoundError(f"no preference-stage checkpoint under {run_dir}")
    resumed = ckpt.load_checkpoint(found)
    mismatches = stage.config.resume_mismatches(resumed["hyperparameters"])
    if mismatches:
        raise ValueError(f"cannot resume from {found}: config differs in {', '.join(mismatches)}")
    if resumed["data_fingerprint"] != stage.train.fingerprint() or resumed["plan"] != stage.plan:
        raise ValueError(f"cannot resume from {found}: the preference pairs are not the same")
    model = stage.accelerator.unwrap_model(stage.loss_module).model
    fit, best = restore_checkpoint(resumed, model, stage.optimizer, stage.scheduler)
    return fit, best, resumed


def preference_summary(stage: PreferenceRun, result: TrainResult) -> dict[str, Any]:
    """What the report says about the stage: pairs used, steps, and held-out scores before/after."""
    final = result.evals[-1] if result.evals else {}
    return {
        "pairs": len(stage.train.pairs), "used": True,
        "val_pairs": stage.data_counts()["val_pairs"], "dropped_pairs": stage.train.dropped,
        "status": result.status, "steps": result.steps, "best_step": result.best_step,
        "reference": stage.config.preference_reference, "before": stage.initial,
        "after": {k: v for k, v in final.items() if k.startswith("preference_")},
        "seconds": round(result.seconds, 1),
    }  # fmt: skip
