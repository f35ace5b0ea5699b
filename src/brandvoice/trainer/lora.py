"""Local LoRA fine-tuning on chat JSONL: an explicit fit loop, readable in one screen.

Batches in, loss normalised by the target tokens of the whole optimizer step, AdamW with a
warmed-up cosine schedule and clipping, validation loss every N steps, early stopping on
overfitting, the best adapter kept, checkpoints that resume to the same result, callbacks out.
``accelerate`` wraps the model for data parallelism, skips gradient sync inside accumulation and
reduces counts across processes, so the same function runs on CPU, one GPU, or several GPUs
under ``accelerate launch`` (DDP).
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
from torch import nn

from brandvoice.inference.base_model import load_tokenizer, pick_device
from brandvoice.trainer import checkpoint as ckpt
from brandvoice.trainer.callbacks import ProgressLines, TrainCallback, is_terminal
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.lora_model import (
    AttentionByWidth,
    TargetTokenLoss,
    adapter_state,
    attention_for,
    build_lora_model,
    check_environment,
    dropout_active,
    load_adapter_state,
    mean_loss_per_target_token,
    pad_multiple_for,
    switches_attention,
    torch_threads,
    use_bf16,
    validation_loss,
)
from brandvoice.trainer.sft_data import (
    TokenizedExample,
    TokenizedSet,
    collate_packed,
    collate_padded,
    plan_steps,
    read_chat_jsonl,
    tokenize_chat_file,
)
from brandvoice.trainer.voice_probe import VoiceProbe, detect_sign_off

if TYPE_CHECKING:
    from brandvoice.trainer.preference_data import PreferenceLike

__all__ = ["ProgressLines", "TrainCallback", "TrainResult", "train_lora", "validation_loss"]

log = logging.getLogger(__name__)

Status = Literal["completed", "early_stopped", "cancelled"]


class FitStage(Protocol):
    """What the fit loop drives: supervised training (``_Run``) or the preference stage."""

    config: TrainConfig
    accelerator: Any
    loss_module: nn.Module
    optimizer: Any
    scheduler: Any
    params: list[nn.Parameter]
    plan: list[list[list[int]]]
    val: Any

    @property
    def steps_per_epoch(self) -> int: ...

    def step(self, fit: ckpt.FitState) -> dict[str, float]: ...

    def evaluate(
        self, fit: ckpt.FitState, best: dict[str, torch.Tensor] | None
    ) -> tuple[dict[str, float], dict[str, torch.Tensor] | None, bool]: ...

    def save_checkpoint(
        self, output_dir: Path, fit: ckpt.FitState, best: dict[str, torch.Tensor] | None
    ) -> None: ...

    def data_counts(self) -> dict[str, int]: ...


@dataclass
class TrainResult:
    output_dir: Path
    status: Status
    steps: int
    total_steps: int
    best_step: int | None
    best_eval_loss: float | None
    first_train_loss: float | None
    final_train_loss: float | None
    trained_tokens: int
    seconds: float
    evals: list[dict[str, Any]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)


def train_lora(
    train_path: str | Path,
    val_path: str | Path | None,
    output_dir: str | Path,
    config: TrainConfig | None = None,
    callbacks: TrainCallback | Sequence[TrainCallback] | None = None,
    snapshot_hash: str | None = None,
    resume_from: str | Path | None = None,
    *,
    base_model: nn.Module | None = None,
    probes: Mapping[str, VoiceProbe] | None = None,
    preferences: tuple[Sequence[PreferenceLike], Sequence[PreferenceLike]] | None = None,
) -> TrainResult:
    """Train a LoRA adapter and write it, with ``manifest.json``, to ``output_dir``.

    ``base_model`` is an already loaded, uncached base to train on (it is modified); by default a
    fresh copy of ``config.base_model`` is loaded. ``resume_from`` is a checkpoint or a run
    directory holding checkpoints, written by a run with the same data and config. When standard
    output is not a terminal, progress lines are written there (unless a ``ProgressLines`` is
    among the callbacks already). ``probes`` are scored at every evaluation and reported in
    ``evals`` under their name, never used to choose the adapter (e.g. a benchmark's held-out
    split). ``preferences`` (training and validation pairs) add the preference stage after SFT
    when there are at least ``config.preference_min_pairs`` of them (``trainer/preference.py``);
    the manifest's ``preference`` says how many pairs were used, or why none were.
    """
    config = config or TrainConfig()
    output_dir = Path(output_dir)
    hooks = progress_hooks(callbacks)
    if (
        preferences is not None
        and resume_from is not None
        and ckpt.preference_checkpoint(resume_from) is not None
    ):
        return _resume_preference_stage(
            Path(resume_from), output_dir, config, hooks, preferences, base_model
        )
    with torch_threads(config.num_threads):
        run, fit, best, resumed = _prepare(config, train_path, val_path, base_model, resume_from)
        run.report_probes = dict(probes or {})
        result = fit_stage(run, fit, best, resumed, output_dir, hooks, snapshot_hash)
        if preferences is not None and result.status != "cancelled":
            result = _preference_stage(run, result, preferences, hooks, snapshot_hash)
        return result


def progress_hooks(
    callbacks: TrainCallback | Sequence[TrainCallback] | None,
) -> list[TrainCallback]:
    """The callbacks, plus progress lines on standard output when it is not a terminal."""
    hooks = [callbacks] if isinstance(callbacks, TrainCallback) else list(callbacks or [])
    if not is_terminal(sys.stdout) and not any(isinstance(h, ProgressLines) for h in hooks):
        hooks.append(ProgressLines(sys.stdout))
    return hooks


def _resume_preference_stage(
    run_dir: Path,
    output_dir: Path,
    config: TrainConfig,
    hooks: list[TrainCallback],
    preferences: tuple[Sequence[PreferenceLike], Sequence[PreferenceLike]],
    base_model: nn.Module | None,
) -> TrainResult:
    """Supervised training finished in ``run_dir`` and the preference stage was interrupted:
    continue the stage on the adapter it left; the result reports both stages."""
    from brandvoice.trainer.preference import train_preference

    sft = ckpt.read_manifest(run_dir / ckpt.PREFERENCE_CHECKPOINTS)
    if output_dir.resolve() != run_dir.resolve():  # so that this attempt can be resumed too
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            shutil.copy2(run_dir / name, output_dir / name)
        ckpt.write_manifest(output_dir / ckpt.PREFERENCE_CHECKPOINTS, sft)
    stage = train_preference(
        output_dir, output_dir, preferences, config, hooks, base_model=base_model,
        resume_from=run_dir,
    )  # fmt: skip
    manifest = sft | {"preference": stage.manifest.get("preference")}
    if stage.status != "cancelled":
        ckpt.write_manifest(output_dir, manifest)
    return TrainResult(
        output_dir=output_dir,
        status=stage.status if stage.status == "cancelled" else sft["status"],
        steps=sft["steps"],
        total_steps=sft["total_steps"],
        best_step=sft["best"]["step"],
        best_eval_loss=sft["best"]["eval_loss"],
        first_train_loss=sft["first_train_loss"],
        final_train_loss=sft["final"]["train_loss"],
        trained_tokens=sft["trained_tokens"],
        seconds=sft["seconds"] + stage.seconds,
        evals=sft["evals"],
        manifest=manifest,
    )


def _preference_stage(
    sft: _Run,
    result: TrainResult,
    preferences: tuple[Sequence[PreferenceLike], Sequence[PreferenceLike]],
    hooks: list[TrainCallback],
    snapshot_hash: str | None,
) -> TrainResult:
    """DPO on the adapter SFT kept; the manifest gains ``preference`` either way."""
    from brandvoice.trainer.preference import (
        preference_summary,
        prepare_preference_run,
        remove_preference_checkpoints,
    )

    train_pairs, val_pairs = preferences
    config, output_dir = sft.config, result.output_dir
    stage = prepare_preference_run(
        sft.loss_module, sft.accelerator, config, train_pairs, val_pairs, sft.tokenizer, sft.bf16
    )
    if stage is None:
        reason = (
            f"{len(train_pairs)} training pairs, fewer than preference_min_pairs="
            f"{config.preference_min_pairs}"
        )
        summary: dict[str, Any] = {"pairs": len(train_pairs), "used": False, "reason": reason}
    else:
        # Kept with the stage's checkpoints: what a resumed stage reports of supervised training.
        ckpt.write_manifest(output_dir / ckpt.PREFERENCE_CHECKPOINTS, result.manifest)
        done = fit_stage(stage, ckpt.FitState(), None, None, output_dir, hooks, snapshot_hash)
        if done.status == "cancelled":  # resumable: its checkpoint stays, and the SFT adapter
            return replace(result, status="cancelled")
        remove_preference_checkpoints(output_dir)
        summary = preference_summary(stage, done)
    manifest = result.manifest | {"preference": summary}
    if sft.accelerator.is_main_process:
        ckpt.write_manifest(output_dir, manifest)
    return replace(result, manifest=manifest, seconds=result.seconds + summary.get("seconds", 0))


def fit_stage(
    run: FitStage,
    fit: ckpt.FitState,
    best: dict[str, torch.Tensor] | None,
    resumed: dict[str, Any] | None,
    output_dir: Path,
    hooks: list[TrainCallback],
    snapshot_hash: str | None,
) -> TrainResult:
    """The fit loop: step, evaluate, stop early or on request, checkpoint, finish."""
    config = run.config
    output_dir.mkdir(parents=True, exist_ok=True)
    total, acc = len(run.plan), run.accelerator
    eval_every = config.eval_every or run.steps_per_epoch
    checkpoint_every = config.checkpoint_every or eval_every
    status: Status = "completed"
    started = time.monotonic() - fit.seconds
    while fit.step < total:
        metrics = run.step(fit)
        metrics["elapsed_s"] = fit.seconds = time.monotonic() - started
        stop = _notify(acc, hooks, "on_step", fit.step, total, metrics)
        if run.val is not None and (fit.step % eval_every == 0 or fit.step == total):
            eval_metrics, best, overfitting = run.evaluate(fit, best)
            stop |= _notify(acc, hooks, "on_eval", fit.step, total, eval_metrics)
            if overfitting:
                status = "early_stopped"
                break
        if stop and fit.step < total:
            status = "cancelled"
            run.save_checkpoint(output_dir, fit, best)
            break
        if fit.step % checkpoint_every == 0 and fit.step < total:
            run.save_checkpoint(output_dir, fit, best)
    fit.seconds = time.monotonic() - started
    return _finish(run, fit, best, status, output_dir, snapshot_hash, resumed)


def _prepare(
    config: TrainConfig,
    train_path: str | Path,
    val_path: str | Path | None,
    base_model: nn.Module | None,
    resume_from: str | Path | None,
) -> tuple[_Run, ckpt.FitState, dict[str, torch.Tensor] | None, dict[str, Any] | None]:
    """Data, data order, model, optimizer and schedule; restored from a checkpoint if given."""
    from accelerate import Accelerator

    check_environment(config)
    device = pick_device(None if config.device == "auto" else config.device)
    bf16 = use_bf16(config, device)
    # Autocast is ours (see _Run.autocast): accelerate's process-wide precision state would
    # refuse a second run in the same process with a different precision.
    # Placement is ours too: the model is loaded on its device, and 4-bit models refuse ``.to``.
    accelerator = Accelerator(cpu=device == "cpu", device_placement=False)
    tokenizer = load_tokenizer(config.base_model)
    train = tokenize_chat_file(train_path, tokenizer, config.max_length)
    val = tokenize_chat_file(val_path, tokenizer, config.max_length) if val_path else None
    if val is not None and not val.examples:
        log.warning("%s has nothing to score; training without validation", val_path)
        val = None
    plan = plan_steps(
        train.lengths, batch_size=config.batch_size, grad_accum_steps=config.grad_accum_steps,
        epochs=config.epochs, max_steps=config.max_steps, seed=config.seed,
        group_window=config.group_window, num_processes=accelerator.num_processes,
        step_cap=config.step_cap,
    )  # fmt: skip
    resumed = ckpt.load_checkpoint(resume_from) if resume_from else None
    if resumed:
        _check_resumable(resumed, config, train, plan)
    attention = attention_for(config, accelerator.device.type, bf16)
    model = build_lora_model(config, str(accelerator.device), base_model, bf16, attention)
    by_width = (
        AttentionByWidth(model.get_base_model())
        if switches_attention(config, accelerator.device.type, bf16)
        else None
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = scheduler_for(config, optimizer, len(plan))
    loss_module, optimizer = accelerator.prepare(TargetTokenLoss(model), optimizer)
    loss_module.train(dropout_active(model))
    fit, best = ckpt.FitState(), None
    if resumed:
        fit, best = restore_checkpoint(resumed, model, optimizer, scheduler)
    run = _Run(config, accelerator, loss_module, optimizer, scheduler, params, train, val, plan)
    run.pad_id, run.bf16, run.tokenizer = tokenizer.pad_token_id or 0, bf16, tokenizer
    run.attention_by_width = by_width
    if val is not None and val_path and config.select_by == "voice":
        references = [
            c[-1]["content"] for c in read_chat_jsonl(train_path) if c[-1]["role"] == "assistant"
        ]
        run.voice_probe = VoiceProbe.from_conversations(
            read_chat_jsonl(val_path), tokenizer, limit=config.voice_prompts,
            sign_off=detect_sign_off(references),
        )  # fmt: skip
    return run, fit, best, resumed


@dataclass
class _Run:
    """What one step and one evaluation need, so the loop above stays one screen."""

    config: TrainConfig
    accelerator: Any
    loss_module: nn.Module
    optimizer: Any
    scheduler: Any
    params: list[nn.Parameter]
    train: TokenizedSet
    val: TokenizedSet | None
    plan: list[list[list[int]]]
    pad_id: int = 0
    bf16: bool = False
    tokenizer: Any = None
    voice_probe: VoiceProbe | None = None
    report_probes: dict[str, VoiceProbe] = field(default_factory=dict)
    attention_by_width: AttentionByWidth | None = None

    def autocast(self) -> Any:
        device_type = self.accelerator.device.type
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16)

    def batch(self, examples: list[TokenizedExample]) -> dict[str, torch.Tensor]:
        if self.config.batching == "packed":
            tensors = collate_packed(examples)
        else:
            tensors = collate_padded(
                examples, self.pad_id, pad_multiple_for(self.config, self.bf16)
            )
        if self.attention_by_width is not None:
            self.attention_by_width(tensors["input_ids"].shape[1])
        return {k: v.to(self.accelerator.device) for k, v in tensors.items()}

    def step(self, fit: ckpt.FitState) -> dict[str, float]:
        """One optimizer step: the loss is the sum over the step's target tokens / their count."""
        acc = self.accelerator
        micro = self.plan[fit.step][acc.process_index :: acc.num_processes]
        step_examples = [self.train.examples[i] for batch in self.plan[fit.step] for i in batch]
        step_tokens = sum(e.n_targets for e in step_examples)
        loss_sum = torch.zeros((), device=acc.device)
        for index, indices in enumerate(micro):
            last = index == len(micro) - 1
            examples = [self.train.examples[i] for i in indices]
            with nullcontext() if last else acc.no_sync(self.loss_module):
                with self.autocast():
                    summed, _ = self.loss_module(**self.batch(examples))
                acc.backward(summed * acc.num_processes / step_tokens)
            loss_sum += summed.detach()
        return finish_step(self, fit, loss_sum, step_tokens, step_tokens)

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.plan, len(self.train.examples))

    def data_counts(self) -> dict[str, int]:
        return {
            "train_examples": len(self.train.examples),
            "val_examples": len(self.val.examples) if self.val else 0,
            "dropped_examples": self.train.dropped,
        }

    def evaluate(
        self, fit: ckpt.FitState, best: dict[str, torch.Tensor] | None
    ) -> tuple[dict[str, float], dict[str, torch.Tensor] | None, bool]:
        """Validation loss, best-adapter bookkeeping, and whether the run is overfitting."""
        assert self.val is not None
        with self.autocast():
            eval_loss = mean_loss_per_target_token(
                self.loss_module, self.val.examples, self.batch, 2 * self.config.batch_size,
                self.accelerator,
            )  # fmt: skip
        train_loss = fit.window_loss_sum / max(fit.window_tokens, 1)
        fit.window_loss_sum, fit.window_tokens = 0.0, 0
        config = self.config
        voice = self.voice_metrics()
        if self.voice_probe is not None:
            is_best, overfitting = record_voice_eval(
                fit, voice["voice_score"], eval_loss, train_loss, config.patience,
                config.voice_tolerance,
            )  # fmt: skip
        else:
            is_best, overfitting = record_eval(
                fit, eval_loss, train_loss, config.patience, config.select_tolerance
            )
        fit.evals[-1] |= voice
        if is_best:
            best = adapter_state(self.accelerator.unwrap_model(self.loss_module).model)
        metrics = fit.evals[-1] | {"best_eval_loss": fit.best_eval_loss, "is_best": float(is_best)}
        metrics["bad_evals"] = fit.bad_evals
        return metrics, best, overfitting

    def voice_metrics(self) -> dict[str, float]:
        """Voice scores of the adapter as it is now: the selection probe's, then the reported ones."""
        model = self.accelerator.unwrap_model(self.loss_module).model
        probes = {"": self.voice_probe} if self.voice_probe else {}
        metrics: dict[str, float] = {}
        with self.autocast():
            for name, probe in (probes | self.report_probes).items():
                prefix = f"{name}_" if name else ""
                metrics |= {prefix + k: v for k, v in probe.score(model, self.tokenizer).items()}
        return metrics

    def save_checkpoint(
        self, output_dir: Path, fit: ckpt.FitState, best: dict[str, torch.Tensor] | None
    ) -> None:
        save_stage_checkpoint(self, output_dir, fit, best, self.train.fingerprint())


def finish_step(
    run: FitStage, fit: ckpt.FitState, loss_sum: torch.Tensor, weight: int, tokens: int
) -> dict[str, float]:
    """Clip, step the optimizer and the schedule, and record the step in ``fit``: its loss is
    ``loss_sum`` over ``weight`` (target tokens for SFT, pairs for the preference stage)."""
    acc, config = run.accelerator, run.config
    grad_norm = (
        acc.clip_grad_norm_(run.params, config.max_grad_norm) if config.max_grad_norm else None
    )
    lr = run.scheduler.get_last_lr()[0]
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    loss = acc.reduce(loss_sum, "sum").item() / weight
    fit.step += 1
    fit.trained_tokens += tokens
    fit.window_loss_sum += loss * weight
    fit.window_tokens += weight
    fit.first_train_loss = fit.first_train_loss if fit.first_train_loss is not None else loss
    fit.last_train_loss = loss
    metrics = {"loss": loss, "lr": lr, "tokens": tokens}
    metrics |= {"trained_tokens": fit.trained_tokens, "epoch": fit.step / run.steps_per_epoch}
    if grad_norm is not None:
        metrics["grad_norm"] = float(grad_norm)
    return metrics


def save_stage_checkpoint(
    run: FitStage,
    directory: Path,
    fit: ckpt.FitState,
    best: dict[str, torch.Tensor] | None,
    fingerprint: str,
) -> None:
    """A resumable checkpoint of ``run`` under ``directory`` (main process only)."""
    if run.accelerator.is_main_process:
        ckpt.save_checkpoint(
            directory,
            fit=fit,
            adapter=adapter_state(run.accelerator.unwrap_model(run.loss_module).model),
            best_adapter=best,
            optimizer=run.optimizer.state_dict(),
            scheduler=run.scheduler.state_dict(),
            plan=run.plan,
            data_fingerprint=fingerprint,
            hyperparameters=run.config.hyperparameters(),
            keep=run.config.keep_checkpoints,
        )
    run.accelerator.wait_for_everyone()


def record_eval(
    fit: ckpt.FitState, eval_loss: float, train_loss: float, patience: int, tolerance: float = 0.0
) -> tuple[bool, bool]:
    """Log one evaluation; returns (keep this adapter, overfitting).

    A validation loss within ``tolerance`` (relative) of the lowest so far ties with it, and the
    later of tied adapters is kept. Above that, while the training loss since the previous
    evaluation fell, the evaluation counts against the run; ``patience`` in a row stop it.
    """
    lowest = eval_loss if fit.lowest_eval_loss is None else min(fit.lowest_eval_loss, eval_loss)
    keep = eval_loss <= lowest * (1 + tolerance)
    if keep:
        fit.best_eval_loss, fit.best_step, fit.bad_evals = eval_loss, fit.step, 0
    elif fit.previous_window_loss is not None and train_loss < fit.previous_window_loss:
        fit.bad_evals += 1
    fit.lowest_eval_loss = lowest
    fit.previous_window_loss = train_loss
    fit.evals.append({"step": fit.step, "eval_loss": eval_loss, "train_loss": train_loss})
    return keep, 0 < patience <= fit.bad_evals


def record_voice_eval(
    fit: ckpt.FitState,
    score: float,
    eval_loss: float,
    train_loss: float,
    patience: int,
    tolerance: float,
) -> tuple[bool, bool]:
    """Log one voice evaluation; returns (keep this adapter, stop).

    A score within ``tolerance`` of the highest so far ties with it, and the later adapter of a
    tie is kept; ``patience`` evaluations in a row below that stop the run.
    """
    highest = score if fit.highest_voice_score is None else max(fit.highest_voice_score, score)
    keep = score >= highest - tolerance
    if keep:
        fit.best_voice_score, fit.best_eval_loss, fit.best_step = score, eval_loss, fit.step
        fit.bad_evals = 0
    else:
        fit.bad_evals += 1
    fit.highest_voice_score = highest
    lowest = fit.lowest_eval_loss
    fit.lowest_eval_loss = eval_loss if lowest is None else min(lowest, eval_loss)
    fit.previous_window_loss = train_loss
    fit.evals.append({"step": fit.step, "eval_loss": eval_loss, "train_loss": train_loss})
    return keep, 0 < patience <= fit.bad_evals


def _finish(
    run: FitStage,
    fit: ckpt.FitState,
    best: dict[str, torch.Tensor] | None,
    status: Status,
    output_dir: Path,
    snapshot_hash: str | None,
    resumed: dict[str, Any] | None,
) -> TrainResult:
    """Write the best adapter (the last one without validation) and the manifest."""
    acc = run.accelerator
    model = acc.unwrap_model(run.loss_module).model
    if status != "cancelled" and acc.is_main_process:
        if best is not None:
            load_adapter_state(model, best)
        model.save_pretrained(str(output_dir))
        ckpt.remove_checkpoints(output_dir)
    manifest = _manifest(run, fit, status, snapshot_hash, resumed)
    if acc.is_main_process:
        ckpt.write_manifest(output_dir, manifest)
    acc.wait_for_everyone()
    fields = {k: v for k, v in asdict(fit).items() if k in ("trained_tokens", "seconds", "evals")}
    return TrainResult(
        output_dir=output_dir,
        status=status,
        steps=fit.step,
        total_steps=len(run.plan),
        best_step=fit.best_step,
        best_eval_loss=fit.best_eval_loss,
        first_train_loss=fit.first_train_loss,
        final_train_loss=fit.last_train_loss,
        manifest=manifest,
        **fields,
    )


def _manifest(
    run: FitStage,
    fit: ckpt.FitState,
    status: Status,
    snapshot_hash: str | None,
    resumed: dict[str, Any] | None,
) -> dict[str, Any]:
    return ckpt.build_manifest(
        fit,
        status=status,
        snapshot_hash=snapshot_hash,
        hyperparameters=run.config.hyperparameters(),
        total_steps=len(run.plan),
        steps_per_epoch=run.steps_per_epoch,
        examples=run.data_counts(),
        resumed_from=resumed["path"] if resumed else None,
        device=str(run.accelerator.device),
        num_processes=run.accelerator.num_processes,
    )


def _notify(accelerator: Any, hooks: list[TrainCallback], name: str, *args: Any) -> bool:
    """Call one hook on every callback (main process); True on every process if any said stop."""
    stop = False
    if accelerator.is_main_process:
        for hook in hooks:
            answer = getattr(hook, name, lambda *_: None)(*args)
            stop |= answer == "stop" or bool(getattr(hook, "should_stop", lambda: False)())
    if accelerator.num_processes > 1:
        flag = torch.tensor(float(stop), device=accelerator.device)
        stop = bool(accelerator.reduce(flag, "sum").item() > 0)
    return stop


def restore_checkpoint(
    resumed: dict[str, Any], model: nn.Module, optimizer: Any, scheduler: Any
) -> tuple[ckpt.FitState, dict[str, torch.Tensor] | None]:
    load_adapter_state(model, resumed["adapter"])
    optimizer.load_state_dict(resumed["optimizer"])
    scheduler.load_state_dict(resumed["scheduler"])
    ckpt.restore_rng_states(resumed["rng"])
    return resumed["fit"], resumed["best_adapter"]


def _check_resumable(
    resumed: dict[str, Any], config: TrainConfig, train: TokenizedSet, plan: list[Any]
) -> None:
    where = resumed["path"]
    mismatches = config.resume_mismatches(resumed["hyperparameters"])
    if mismatches:
        raise ValueError(f"cannot resume from {where}: config differs in {', '.join(mismatches)}")
    if resumed["data_fingerprint"] != train.fingerprint() or resumed["plan"] != plan:
        raise ValueError(f"cannot resume from {where}: the training data is not the same")


def steps_per_epoch(plan: list[list[list[int]]], examples: int) -> int:
    """Optimizer steps that cover the ``examples`` of the training set once (at least 1)."""
    seen, steps = 0, 0
    for step in plan:
        seen += sum(len(batch) for batch in step)
        steps += 1
        if seen >= examples:
            break
    return max(steps, 1)


def scheduler_for(config: TrainConfig, optimizer: Any, total_steps: int) -> Any:
    from transformers import get_scheduler

    name = "constant_with_warmup" if config.lr_scheduler == "constant" else config.lr_scheduler
    warmup = math.ceil(config.warmup_ratio * total_steps)
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
