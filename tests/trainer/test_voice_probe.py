"""Voice-aware selection: the kept adapter is the one whose greedy replies sound most like the brand."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from brandvoice.trainer.checkpoint import FitState
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.lora import record_voice_eval, train_lora
from brandvoice.trainer.sft_data import read_chat_jsonl
from brandvoice.trainer.voice_probe import VoiceProbe, detect_sign_off

SIGN_OFF = "Happy trails! 🌲"


def test_a_sign_off_is_the_last_line_most_replies_share() -> None:
    replies = [f"Answer {i}.\n\n{SIGN_OFF}" for i in range(9)] + ["No sign-off here."]
    assert detect_sign_off(replies) == SIGN_OFF
    assert detect_sign_off([f"Answer {i}." for i in range(10)]) is None
    bank = [f"Reply {i}.\n\nKind regards,\nHarbor Trust Client Services" for i in range(4)]
    assert detect_sign_off(bank) == "Harbor Trust Client Services"
    assert detect_sign_off([f"Short {SIGN_OFF}"] * 2) is None  # too few replies to tell


def test_voice_score_rewards_the_brand_reply_and_its_sign_off(tokenizer: Any) -> None:
    conversation = [
        {"role": "user", "content": "Can I return boots I wore once?"},
        {"role": "assistant", "content": f"Yes, within 60 days, worn or not.\n\n{SIGN_OFF}"},
    ]
    probe = VoiceProbe.from_conversations([conversation], tokenizer, sign_off=SIGN_OFF)
    assert probe.prompts[0].rstrip().endswith("assistant")
    close = probe.score_replies([f"Yes, you can return them within 60 days.\n\n{SIGN_OFF}"])
    unsigned = probe.score_replies(["Yes, you can return them within 60 days."])
    off_topic = probe.score_replies(["The capital of France is Paris."])
    assert close["sign_off_rate"] == 1.0 and unsigned["sign_off_rate"] == 0.0
    assert close["voice_score"] == pytest.approx(close["voice_similarity"] + 0.1)
    assert close["voice_score"] > unsigned["voice_score"] > off_topic["voice_score"]


def test_voice_selection_keeps_the_later_of_tied_scores_and_stops_after_patience() -> None:
    fit = FitState()
    verdicts = []
    for step, score in enumerate([0.50, 0.60, 0.595, 0.55, 0.54], start=1):
        fit.step = step
        verdicts.append(record_voice_eval(fit, score, 2.0, 1.0, patience=2, tolerance=0.01))
    assert verdicts == [(True, False), (True, False), (True, False), (False, False), (False, True)]
    assert (fit.best_step, fit.best_voice_score, fit.highest_voice_score) == (3, 0.595, 0.60)


SHORT = [
    ("Do you ship to Canada?", "Yes, in about five days."),
    ("Can I return worn boots?", "Yes, within 60 days."),
    ("Is the Burrow 2 freestanding?", "Yes, it stands on its own."),
    ("Do you repair zippers?", "Yes, for free, for life."),
    ("Are your jackets PFAS-free?", "Yes, every one since 2020."),
    ("Can I cancel my order?", "Yes, until it ships."),
]


def _write(path: Path, pairs: list[tuple[str, str]]) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": q},
                {"role": "assistant", "content": f"{a}\n\n{SIGN_OFF}"},
            ]
        }
        for q, a in pairs
    ]
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


@pytest.mark.slow
def test_training_by_voice_keeps_the_adapter_with_the_best_voice_score(
    fresh_base: Any, tokenizer: Any, tmp_path: Path
) -> None:
    """Short replies keep the greedy generations (and so the test) cheap."""
    from peft import PeftModel

    train, val = (
        _write(tmp_path / "train.jsonl", SHORT[:4]),
        _write(tmp_path / "val.jsonl", SHORT[4:]),
    )
    config = TrainConfig(
        max_steps=4, eval_every=2, batch_size=2, max_length=64, select_by="voice",
        voice_prompts=1, patience=0, precision="fp32", attention="sdpa", num_threads=1, seed=3,
    )  # fmt: skip
    held_out = VoiceProbe.from_conversations(read_chat_jsonl(val)[1:], tokenizer)
    result = train_lora(
        train, val, tmp_path / "out", config, base_model=copy.deepcopy(fresh_base),
        probes={"heldout": held_out},
    )  # fmt: skip

    assert [e["step"] for e in result.evals] == [2, 4]
    for evaluation in result.evals:
        assert 0.0 <= evaluation["sign_off_rate"] <= 1.0  # the sign-off was found in train
        assert "heldout_voice_similarity" in evaluation
        assert "heldout_sign_off_rate" not in evaluation  # that probe was given no sign-off
    best = max(result.evals, key=lambda e: e["voice_score"])
    kept = [e for e in result.evals if e["voice_score"] >= best["voice_score"] - 0.01][-1]
    assert result.best_step == kept["step"]
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["best"]["voice_score"] == pytest.approx(kept["voice_score"])

    probe = VoiceProbe.from_conversations(
        read_chat_jsonl(val), tokenizer, limit=1, sign_off=SIGN_OFF
    )
    adapter = PeftModel.from_pretrained(copy.deepcopy(fresh_base), str(tmp_path / "out"))
    assert probe.score(adapter.eval(), tokenizer)["voice_score"] == pytest.approx(
        kept["voice_score"], abs=1e-4
    )
