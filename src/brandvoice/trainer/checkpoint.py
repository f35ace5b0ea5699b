"""Resumable checkpoints and the run manifest of a local LoRA run.

A checkpoint holds everything that decides the rest of the run (LoRA weights, optimizer,
scheduler, RNG states, step, data order, early-stopping state), so resuming from it reaches the
same adapter as a run that was never interrupted.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

CHECKPOINTS_DIR = "checkpoints"
PREFERENCE_CHECKPOINTS = "preference-checkpoints"
"""Where the preference stage checkpoints, beside supervised training's ``checkpoints``."""
STATE_FILE = "state.pt"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "brandvoice-lora-manifest/1"


@dataclass
class FitState:
    """Progress of a run that a checkpoint carries across an interruption."""

    step: int = 0
    trained_tokens: int = 0
    seconds: float = 0.0
    evals: list[dict[str, Any]] = field(default_factory=list)
    best_eval_loss: float | None = None
    """Validation loss of the kept adapter."""
    best_step: int | None = None
    """Step of the kept adapter."""
    lowest_eval_loss: float | None = None
    best_voice_score: float | None = None
    """Voice score of the kept adapter (voice selection)."""
    highest_voice_score: float | None = None
    bad_evals: int = 0
    window_loss_sum: float = 0.0
    window_tokens: int = 0
    previous_window_loss: float | None = None
    first_train_loss: float | None = None
    last_train_loss: float | None = None


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    output_dir: Path,
    *,
    fit: FitState,
    adapter: dict[str, torch.Tensor],
    best_adapter: dict[str, torch.Tensor] | None,
    optimizer: dict[str, Any],
    scheduler: dict[str, Any],
    plan: list[list[list[int]]],
    data_fingerprint: str,
    hyperparameters: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``checkpoints/step-NNNNNN/state.pt`` atomically and drop all but the newest ``keep``."""
    root = output_dir / CHECKPOINTS_DIR
    directory = root / f"step-{fit.step:06d}"
    partial = root / f".partial-{fit.step:06d}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    torch.save(
        {
            "fit": asdict(fit),
            "adapter": {k: v.detach().cpu() for k, v in adapter.items()},
            "best_adapter": best_adapter,
            "optimizer": optimizer,
            "scheduler": scheduler,
            "rng": rng_states(),
            "plan": plan,
            "data_fingerprint": data_fingerprint,
            "hyperparameters": hyperparameters,
        },
        partial / STATE_FILE,
    )
    (partial / "checkpoint.json").write_text(
        json.dumps({"step": fit.step, "evals": fit.evals, "trained_tokens": fit.trained_tokens})
    )
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return directory


def latest_checkpoint(path: str | Path) -> Path | None:
    """The checkpoint at ``path``, or the newest one under ``path/checkpoints``; ``None`` if none."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    candidates = sorted((path / CHECKPOINTS_DIR).glob("step-*/" + STATE_FILE))
    return candidates[-1].parent if candidates else None


def preference_checkpoint(path: str | Path) -> Path | None:
    """The newest checkpoint of an interrupted preference stage in run directory ``path``."""
    return latest_checkpoint(Path(path) / PREFERENCE_CHECKPOINTS)


def resumable(path: str | Path) -> bool:
    """Whether a run directory holds a checkpoint of either stage to continue from."""
    return latest_checkpoint(path) is not None or preference_checkpoint(path) is not None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's contents; ``path`` is a checkpoint or a run directory holding checkpoints."""
    found = latest_checkpoint(path)
    if found is None:
        raise FileNotFoundError(
            f"no checkpoint at {path}: expected {STATE_FILE} there or under {CHECKPOINTS_DIR}/step-*"
        )
    state = torch.load(found / STATE_FILE, map_location="cpu", weights_only=True)
    state["fit"] = FitState(**state["fit"])
    state["path"] = str(found)
    return state


def remove_checkpoints(output_dir: Path) -> None:
    shutil.rmtree(output_dir / CHECKPOINTS_DIR, ignore_errors=True)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in ("torch", "transformers", "peft", "accelerate", "brandvoice"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_sha() -> str | None:
    """The commit of the checkout the package runs from, when it runs from one."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def build_manifest(
    fit: FitState,
    *,
    status: str,
    snapshot_hash: str | None,
    hyperparameters: dict[str, Any],
    total_steps: int,
    steps_per_epoch: int,
    examples: dict[str, int],
    resumed_from: str | None,
    device: str,
    num_processes: int,
) -> dict[str, Any]:
    """What produced an adapter: data, config, metrics per evaluation, versions, time."""
    return {
        "format": MANIFEST_FORMAT,
        "status": status,
        "snapshot_hash": snapshot_hash,
        "base_model": hyperparameters["base_model"],
        "hyperparameters": hyperparameters,
        "steps": fit.step,
        "total_steps": total_steps,
        "epochs": round(fit.step / steps_per_epoch, 3),
        **examples,
        "trained_tokens": fit.trained_tokens,
        "evals": fit.evals,
        "best": {
            "step": fit.best_step,
            "eval_loss": fit.best_eval_loss,
            "lowest_eval_loss": fit.lowest_eval_loss,
        }
        | ({"voice_score": fit.best_voice_score} if fit.best_voice_score is not None else {}),
        "final": {
            "step": fit.step,
            "train_loss": fit.last_train_loss,
            "eval_loss": fit.evals[-1]["eval_loss"] if fit.evals else None,
        },
        "first_train_loss": fit.first_train_loss,
        "seconds": round(fit.seconds, 2),
        "resumed_from": resumed_from,
        "device": device,
        "num_processes": num_processes,
        "versions": package_versions(),
        "git_sha": git_sha(),
    }


def write_manifest(output_dir: Path, manifest: dict[str, Any]) -> Path:
    path = output_dir / MANIFEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_manifest(output_dir: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((output_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    return manifest
