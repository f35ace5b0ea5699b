"""Runs, concurrent promotions and the audit log through the REST API, over a real loopback
socket where concurrency matters."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlmodel import select

from brandvoice.bot.settings import Settings
from brandvoice.bot.web import create_app
from brandvoice.store.db import session_scope
from brandvoice.store.models import AuditLog, TrainingRun
from brandvoice.trainer.registry import promote_version, register_candidate

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _unused_loader(version):  # the REST routes never make a model speak
    raise AssertionError("no model should be loaded")


def _app(engine, tmp_path):  # type: ignore[no-untyped-def]
    settings = Settings(api_token=TOKEN, artifacts_dir=tmp_path, _env_file=None)
    return create_app(settings, engine, backend_loader=_unused_loader)


@pytest.fixture
def client(engine, tmp_path) -> TestClient:
    return TestClient(_app(engine, tmp_path), headers=AUTH)


@pytest.fixture
def server_url(engine, tmp_path) -> Iterator[str]:
    """The web app served by uvicorn on a loopback port, as in production."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(_app(engine, tmp_path), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


def _audit(engine) -> list[AuditLog]:
    with session_scope(engine) as session:
        return list(session.exec(select(AuditLog).order_by(AuditLog.id)))


def test_a_run_request_takes_the_options_of_brandvoice_train(client, engine):
    body = {"force": True, "backend": "local", "snapshot": 3, "epochs": 2, "max_steps": 5}
    response = client.post("/api/runs", json=body)
    assert response.status_code == 202, response.text
    run = response.json()
    assert (run["kind"], run["force"], run["backend"]) == ("train", True, "local")
    assert run["config"] == {"train": {"epochs": 2, "max_steps": 5}, "snapshot_id": 3}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"config": {"train": {"epochs": 2}}}, "config"),  # silently dropped before
        ({"epochs": 0}, "epochs"),
        ({"max_steps": "many"}, "max_steps"),
        ({"backend": "gpu-farm"}, "backend"),
        ({"kind": "generate"}, "per_example"),
        ({"kind": "generate", "per_example": 21}, "per_example"),
        ({"kind": "generate", "per_example": 2, "force": True}, "force"),
        ({"kind": "deploy"}, "kind"),
    ],
)
def test_a_run_request_with_unknown_or_invalid_options_is_refused(client, engine, body, where):
    response = client.post("/api/runs", json=body)
    assert response.status_code == 422, response.text
    assert any(where in map(str, error["loc"]) for error in response.json()["detail"])
    with session_scope(engine) as session:
        assert session.exec(select(TrainingRun)).all() == []


def test_generation_is_its_own_kind_and_one_run_at_a_time_is_the_rule(client, engine):
    queued = client.post("/api/runs", json={"kind": "generate", "per_example": 3})
    assert queued.status_code == 202
    assert (queued.json()["kind"], queued.json()["config"]) == ("generate", {"per_example": 3})
    refused = client.post("/api/runs", json={"force": True})
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"run #{queued.json()['id']} is already queued; wait for its report"
    )
    refusal = _audit(engine)[-1]
    assert (refusal.actor, refusal.action) == ("api", "run.enqueue.refused")
    client.post(f"/api/runs/{queued.json()['id']}/cancel")
    assert client.post("/api/runs", json={}).status_code == 202


def test_concurrent_promotions_never_fail_with_a_500(server_url, engine):
    """Two promotions at once, 20 times over: each is applied or refused with a 409, never a
    500 from the one-promoted index, and exactly one version is promoted afterwards."""
    with session_scope(engine) as session:
        for _ in range(2):
            register_candidate(session, base_model="base")
    statuses: list[int] = []
    for _ in range(20):
        barrier = threading.Barrier(2)
        answers: dict[str, httpx.Response] = {}

        def promote(name: str, barrier: threading.Barrier, answers: dict) -> None:  # type: ignore[type-arg]
            with httpx.Client(base_url=server_url, headers=AUTH, timeout=60) as http:
                barrier.wait()
                answers[name] = http.post(f"/api/models/{name}/promote")

        threads = [
            threading.Thread(target=promote, args=(name, barrier, answers)) for name in ("v1", "v2")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for answer in answers.values():
            statuses.append(answer.status_code)
            assert answer.status_code in (200, 409), answer.text
            if answer.status_code == 409:
                assert "at the same moment" in answer.json()["detail"]
        models = httpx.get(f"{server_url}/api/models", headers=AUTH).json()
        assert [m["status"] for m in models].count("promoted") == 1
    refusals = [a for a in _audit(engine) if a.action == "model.promote.refused"]
    assert len(refusals) == statuses.count(409)


def test_a_promotion_while_another_is_being_applied_gets_a_clear_409(server_url, engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's write lock makes promotions wait their turn instead")
    with session_scope(engine) as session:
        for _ in range(2):
            register_candidate(session, base_model="base")
    with session_scope(engine) as session:
        promote_version(session, "v1", "U0CURATOR")  # applied, not yet committed
        answer = httpx.post(f"{server_url}/api/models/v2/promote", headers=AUTH, timeout=30)
    assert answer.status_code == 409
    assert answer.json()["detail"].startswith(
        "another promotion, rollback or discard was being applied at the same moment"
    )
    models = {
        m["name"]: m["status"] for m in httpx.get(f"{server_url}/api/models", headers=AUTH).json()
    }
    assert models == {"v1": "promoted", "v2": "candidate"}
    (refusal,) = [a for a in _audit(engine) if a.action.endswith(".refused")]
    assert (refusal.actor, refusal.action, refusal.target) == ("api", "model.promote.refused", "v2")


def test_the_audit_log_can_be_filtered_and_paged(client, engine):
    with session_scope(engine) as session:
        for _ in range(3):
            register_candidate(session, base_model="base")
        promote_version(session, "v1", "U1")
        promote_version(session, "v2", "U2")
    assert client.post("/api/models/v3/discard").status_code == 200
    assert client.post("/api/models/v2/discard").status_code == 409

    everything = client.get("/api/audit").json()
    assert [e["action"] for e in everything][:2] == ["model.discard.refused", "model.discard"]
    promotions = client.get("/api/audit", params={"action": "model.promote"}).json()
    assert [(e["actor"], e["target"]) for e in promotions] == [("U2", "v2"), ("U1", "v1")]
    about_v2 = client.get("/api/audit", params={"version": "v2"}).json()
    assert [e["action"] for e in about_v2] == [
        "model.discard.refused",
        "model.promote",
        "model.register",
    ]
    assert "in production" in about_v2[0]["details"]["reason"]
    by_api = client.get("/api/audit", params={"actor": "api"}).json()
    assert {e["action"] for e in by_api} == {"model.discard", "model.discard.refused"}
    page = client.get("/api/audit", params={"limit": 2, "offset": 2}).json()
    assert [e["id"] for e in page] == [e["id"] for e in everything[2:4]]
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert client.get("/api/audit", params={"since": later}).json() == []
    earlier = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert len(client.get("/api/audit", params={"since": earlier}).json()) == len(everything)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": -1},
        {"limit": 1001},
        {"offset": -1},
        {"offset": 2**63},
        {"since": "yesterday"},
        {"since": "2026-11-30T08:00:00"},  # no offset: ambiguous
        {"actor": "x" * 201},
    ],
)
def test_audit_parameters_are_validated(client, params):
    response = client.get("/api/audit", params=params)
    assert response.status_code == 422, response.text
    assert TestClient(client.app).get("/api/audit").status_code == 401
