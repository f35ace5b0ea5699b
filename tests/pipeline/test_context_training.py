"""A retrain with team knowledge trains and evaluates on what replies would be given."""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import select

from brandvoice.bot.knowledge import KnowledgeService, add_documents, read_documents
from brandvoice.bot.settings import Settings
from brandvoice.bot.worker import Worker
from brandvoice.inference.embeddings import cosine_similarity
from brandvoice.inference.retrieval import CONTEXT_HEADER
from brandvoice.samples import sample_examples_path, sample_knowledge_paths
from brandvoice.store.db import session_scope
from brandvoice.store.feedback import record_interaction
from brandvoice.store.importer import import_jsonl
from brandvoice.store.models import ModelVersion, RunStatus, TrainingRun
from brandvoice.store.runs import enqueue_run
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.context_data import CONTEXT_DIR
from brandvoice.trainer.eval_report import report_of
from brandvoice.trainer.evaluate import EvalConfig
from brandvoice.trainer.pipeline import PipelineConfig, PipelineServices, run_dir, run_retrain
from tests.pipeline.test_retrain import serve

ASKED_TWICE = [
    {"role": "user", "content": "Do you ship tents to Canada, and how long does it take?"}
]
ASKED_ONCE = [{"role": "user", "content": "How should I store my sleeping bag over winter?"}]


def read_rows(path: Path) -> list[list[dict[str, str]]]:
    return [json.loads(line)["messages"] for line in path.read_text().splitlines()]


def test_training_examples_carry_retrieved_context_but_never_their_own_reply(
    engine, count_tokens, minilm, tmp_path
):
    settings = Settings(_env_file=None, redact_allow="pebbleandpine.example")
    add_documents(engine, read_documents(sample_knowledge_paths(), settings), minilm, "test")
    with session_scope(engine) as session:
        import_jsonl(session, sample_examples_path(), count_tokens)
        taught = read_rows(sample_examples_path())[0][:-1]
        for i, prompt in enumerate([taught, ASKED_TWICE, ASKED_TWICE, ASKED_ONCE]):
            record_interaction(
                session, channel="C1", message_ts=f"1.{i}", prompt_messages=prompt, reply="ok"
            )
        run_id = enqueue_run(session, "U1").id
    knowledge = KnowledgeService(settings, embed=minilm)
    services = PipelineServices(
        load_backend=serve,
        similarity=cosine_similarity,
        retrieve_context=knowledge.context_block,
    )
    config = PipelineConfig(
        artifacts_dir=tmp_path / "artifacts",
        train=TrainConfig(max_steps=2, batch_size=2, max_length=640, irrelevant_context_share=0.25),
        eval=EvalConfig(max_examples=2, max_new_tokens=8, samples=2),
    )
    Worker(engine, lambda rid, rep: run_retrain(engine, rid, config, services, rep)).tick()

    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id)
        version = session.exec(select(ModelVersion)).one()
    assert run.status == RunStatus.SUCCEEDED, run.error
    context = report_of(version).training.context
    folder = run_dir(config.artifacts_dir, run_id) / CONTEXT_DIR
    train, val = read_rows(folder / "train.jsonl"), read_rows(folder / "val.jsonl")
    assert context.examples == len(train) == run.metrics["training"]["context"]["examples"]
    assert context.with_context + context.ungrounded == len(train), "every request finds some"
    assert 0 < context.irrelevant < len(train) / 2
    with_context = [m for m in train if m[1]["content"].startswith(CONTEXT_HEADER)]
    assert len(with_context) == context.with_context
    assert 0 < context.ungrounded < len(train) / 2, "replies with facts beyond it train plain"
    for messages in with_context + val:
        assert messages[1]["role"] == "system" and messages[1]["content"].startswith(CONTEXT_HEADER)
        own_reply = messages[-1]["content"].strip()
        assert own_reply not in messages[1]["content"], "an example's answer is never its context"
    assert any("Policies" in m[1]["content"] for m in train), "knowledge files are retrieved"
    assert "trained with retrieved context" in context.describe()
    claims = report_of(version).unsupported_claims
    assert claims.served_requests == 2, "two requests no example holds, the repeat once"
    assert claims.candidate.replies == report_of(version).examples + 2
