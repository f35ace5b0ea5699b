from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from brandvoice.bot.settings import Settings
from brandvoice.bot.web import create_app
from brandvoice.inference.chat import ChatResult
from brandvoice.store.db import session_scope
from brandvoice.store.importer import import_jsonl
from brandvoice.store.models import RunStatus
from brandvoice.trainer.eval_report import SCHEMA_VERSION, EvalReport
from brandvoice.trainer.registry import register_candidate
from tests.conftest import TEST_DATA
from tests.eval_reports import make_report, old_stored_report

TOKEN = "s3cret-token"


def _unused_loader(version):  # the REST routes never make a model speak
    raise AssertionError("no model should be loaded")


@pytest.fixture
def client(engine, tmp_path) -> TestClient:
    settings = Settings(api_token=TOKEN, artifacts_dir=tmp_path, _env_file=None)
    app = create_app(settings, engine, backend_loader=_unused_loader)
    return TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})


def test_every_api_route_needs_the_bearer_token(client):
    anonymous = TestClient(client.app)
    for method, path in [
        ("get", "/api/examples"),
        ("post", "/api/runs"),
        ("post", "/api/models/v1/promote"),
        ("post", "/v1/chat/completions"),
    ]:
        response = getattr(anonymous, method)(path)
        assert response.status_code == 401, path
    wrong = anonymous.get("/api/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    assert anonymous.get("/readyz").json() == {"status": "ready"}


def test_promote_and_rollback_through_the_api(client, engine):
    with session_scope(engine) as session:
        register_candidate(session, base_model="base")
        register_candidate(session, base_model="base")
    assert client.post("/api/models/v1/promote").json()["status"] == "promoted"
    assert client.post("/api/models/v2/promote").json()["promoted_by"] == "api"
    models = {m["name"]: m["status"] for m in client.get("/api/models").json()}
    assert models == {"v1": "retired", "v2": "promoted"}
    assert client.post("/api/models/rollback").json() == {"restored": "v1", "demoted": "v2"}
    refused = client.post("/api/models/v1/discard")
    assert refused.status_code == 409 and "in production" in refused.json()["detail"]
    assert client.post("/api/models/v7/promote").status_code == 404


def test_examples_can_be_filtered_curated_and_edited(client, engine, count_tokens):
    with session_scope(engine) as session:
        import_jsonl(session, TEST_DATA / "good_examples.jsonl", count_tokens)
    listed = client.get("/api/examples", params={"status": "approved", "limit": 2}).json()
    assert len(listed) == 2
    first = listed[0]["id"]
    assert client.post(f"/api/examples/{first}/reject").json()["status"] == "rejected"
    assert len(client.get("/api/examples", params={"status": "rejected"}).json()) == 1
    new_messages = [
        {"role": "user", "content": "Where is my order? Mail me at ana@example.com"},
        {"role": "assistant", "content": "On its way."},
    ]
    edited = client.patch(f"/api/examples/{first}", json={"messages": new_messages}).json()
    assert edited["messages"][0]["content"] == "Where is my order? Mail me at <EMAIL>"
    bad = client.patch(
        f"/api/examples/{first}", json={"messages": [{"role": "user", "content": "x"}]}
    )
    assert bad.status_code == 422 and "assistant" in bad.json()["detail"]
    assert client.post("/api/examples/999/approve").status_code == 404


def test_runs_are_enqueued_listed_and_cancelled(client):
    run = client.post("/api/runs", json={"force": True})
    assert run.status_code == 202
    body = run.json()
    assert (body["status"], body["force"], body["requested_by"]) == ("queued", True, "api")
    assert client.get(f"/api/runs/{body['id']}").json()["status"] == RunStatus.QUEUED
    assert client.post(f"/api/runs/{body['id']}/cancel").json()["status"] == "cancelled"
    again = client.post(f"/api/runs/{body['id']}/cancel")
    assert again.status_code == 409


def test_snapshot_files_can_be_downloaded(client, engine, count_tokens, tmp_path):
    from brandvoice.store.snapshots import snapshot_dataset

    with session_scope(engine) as session:
        import_jsonl(session, TEST_DATA / "good_examples.jsonl", count_tokens)
        snapshot, _ = snapshot_dataset(session, tmp_path)
    listed = client.get("/api/snapshots").json()
    assert [s["content_hash"] for s in listed] == [snapshot.content_hash]
    train = client.get(f"/api/snapshots/{snapshot.id}/train.jsonl")
    assert train.status_code == 200
    lines = [json.loads(line) for line in train.text.splitlines()]
    assert len(lines) == snapshot.stats["train"] and "messages" in lines[0]


class EchoModel:
    """A stand-in for the model at the far side: answers with a fixed reply."""

    model_name = "echo"
    supports_json = False

    def complete(self, messages, sampling=None):  # type: ignore[no-untyped-def]
        return ChatResult("Happy trails! 🌲 call me at +1 415-555-0134")

    def complete_batch(self, conversations, sampling=None):  # type: ignore[no-untyped-def]
        return [self.complete(m, sampling) for m in conversations]


def test_unknown_version_in_chat_completions_is_a_404(engine, tmp_path):
    settings = Settings(api_token=TOKEN, artifacts_dir=tmp_path, _env_file=None)
    app = create_app(settings, engine, backend_loader=lambda version: EchoModel())
    client = TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})
    response = client.post(
        "/v1/chat/completions",
        json={"model": "v9", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 404 and "no model version 'v9'" in response.json()["detail"]


def test_chat_replies_are_redacted_before_they_are_recorded(engine, tmp_path):
    from sqlmodel import select

    from brandvoice.store.models import Interaction

    settings = Settings(api_token=TOKEN, artifacts_dir=tmp_path, _env_file=None)
    app = create_app(settings, engine, backend_loader=lambda version: EchoModel())
    client = TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})
    body = {"messages": [{"role": "user", "content": "I am bo@example.com"}]}
    answer = client.post("/v1/chat/completions", json=body).json()
    assert answer["choices"][0]["message"]["content"].endswith("+1 415-555-0134")
    with session_scope(engine) as session:
        (interaction,) = session.exec(select(Interaction)).all()
    assert interaction.reply == "Happy trails! 🌲 call me at <PHONE>"
    assert interaction.prompt_messages[-1]["content"] == "I am <EMAIL>"


def test_reports_are_served_as_the_typed_report_old_rows_included(client, engine):
    report = make_report()
    with session_scope(engine) as session:
        register_candidate(session, base_model="base", eval=old_stored_report())
        register_candidate(session, base_model="base", eval=report.to_stored())
        register_candidate(session, base_model="base")

    served = client.get("/api/reports/v2").json()
    assert served["version"] == "v2" and served["status"] == "candidate"
    assert EvalReport.model_validate(served["eval"]) == report
    assert served["eval"]["voice_similarity"]["candidate"] == 0.6123
    assert served["eval"]["verdict"] == {"recommend_promote": True, "reasons": []}
    listed = client.get("/api/reports").json()
    assert [r["version"] for r in listed] == ["v2", "v1"]
    assert listed[1]["eval"]["schema_version"] == SCHEMA_VERSION
    assert client.get("/api/reports/v3").json()["eval"] is None
    assert client.get("/api/reports/v9").status_code == 404
