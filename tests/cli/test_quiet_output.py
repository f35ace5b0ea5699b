"""What a user sees when a command loads the model: our output only, library noise with ``-v``.

Each run has its own home directory, so the packaged GGUF is converted afresh (the slowest and
noisiest library step) and nothing is left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "brandvoice"]
LIBRARY_NOISE = (
    "Converting and de-quantizing GGUF tensors",
    "Loading weights",
    "Writing model shards",
    "it/s]",
    "Warning",
    "[transformers]",
)


def run_cli(tmp_path: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``brandvoice *args`` with its own home (model cache), store and artifacts under tmp_path."""
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'brandvoice.db'}",
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
    }
    return subprocess.run(
        [*CLI, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )


def chat(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / f"home{'-'.join(flags)}"
    return run_cli(tmp_path, home, *flags, "chat", "Say hello to the team", "--max-tokens", "4")


def test_loading_the_model_prints_only_our_output_and_verbose_shows_the_libraries(
    tmp_path: Path,
) -> None:
    quiet = chat(tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("base model:")
    for noise in LIBRARY_NOISE:
        assert noise not in quiet.stdout + quiet.stderr, noise
    assert quiet.stderr == ""

    verbose = chat(tmp_path, "-v")
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stdout.startswith("base model:")
    assert "Converting and de-quantizing GGUF tensors" in verbose.stderr
    assert "Loading weights" in verbose.stderr
    assert "converting" in verbose.stderr  # our own INFO record about the one-time conversion


def test_train_prints_its_report_once_without_a_log_line(tmp_path: Path) -> None:
    """The CLI prints the report itself; the worker's log line for it would say it twice."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(tmp_path, tmp_path / "home", *args)

    imported = run("import", str(Path(__file__).parents[1] / "data" / "good_examples.jsonl"))
    assert imported.returncode == 0, imported.stderr
    trained = run("train", "--max-steps", "1")
    assert trained.returncode == 0, trained.stderr
    assert "v1" in trained.stdout
    assert "registered:" not in trained.stdout + trained.stderr
    for noise in LIBRARY_NOISE:
        assert noise not in trained.stdout + trained.stderr, noise
