"""Shared fixtures for the trainer tests: the packaged SmolLM2, loaded once, and tiny brand sets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BRAND_EXAMPLES = Path(__file__).resolve().parents[2] / "src/brandvoice/samples/brand/examples.jsonl"


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from brandvoice.inference.base_model import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def fresh_base() -> Any:
    """One uncached load of the packaged base; tests train on deep copies of it."""
    from brandvoice.inference.base_model import load_fresh_base_model

    return load_fresh_base_model(device="cpu").eval()


@pytest.fixture(scope="session")
def brand_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four training and two validation examples from the packaged Pebble & Pine set."""
    lines = [line for line in BRAND_EXAMPLES.read_text(encoding="utf-8").splitlines() if line]
    directory = tmp_path_factory.mktemp("brand")
    train, val = directory / "train.jsonl", directory / "val.jsonl"
    train.write_text("\n".join(lines[:4]) + "\n", encoding="utf-8")
    val.write_text("\n".join(lines[4:6]) + "\n", encoding="utf-8")
    return train, val


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    """One intra-op thread: on a small shared CPU, more threads spin against each other."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
