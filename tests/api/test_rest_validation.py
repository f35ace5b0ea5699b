"""Hostile REST requests over the real wire: every bad parameter is a 422, never a 500.

Ids beyond PostgreSQL's integer (and SQLite's 64-bit) range, negative limits and offsets, bodies
too large or unauthenticated: each gets a clear 4xx before it reaches the database.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from brandvoice.bot.settings import Settings
from brandvoice.bot.web import create_app
from brandvoice.store.db import session_scope
from brandvoice.store.importer import import_jsonl
from brandvoice.store.models import Example
from tests.conftest import TEST_DATA

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _no_model(version):  # type: ignore[no-untyped-def]
    raise AssertionError("no model should be loaded")


@pytest.fixture
def client(engine, tmp_path) -> TestClient:
    settings = Settings(
        api_token=TOKEN,
        artifacts_dir=tmp_path,
        max_example_tokens=60,
        max_request_bytes=64_000,
        _env_file=None,
    )
    app = create_app(settings, engine, backend_loader=_no_model)
    return TestClient(app, headers=AUTH, raise_server_exceptions=False)


@pytest.fixture
def example_id(client, engine, count_tokens) -> int:
    with session_scope(engine) as session:
        import_jsonl(session, TEST_DATA / "good_examples.jsonl", count_tokens)
        return session.exec(select(Example.id)).first()


@pytest.mark.parametrize(
    "params",
    [
        {"limit": -1},
        {"limit": 0},
        {"limit": 1001},
        {"limit": 2**63},
        {"offset": -1},
        {"offset": 2**63},
        {"limit": "ten"},
        {"status": "everything"},
    ],
)
def test_list_parameters_out_of_range_are_422(client, example_id, params):
    response = client.get("/api/examples", params=params)
    assert response.status_code == 422, response.text


def test_the_row_cap_holds(client, example_id):
    assert len(client.get("/api/examples", params={"limit": 1000}).json()) == 6
    assert client.get("/api/runs", params={"limit": -1}).status_code == 422


@pytest.mark.parametrize("bad_id", [0, -1, 2**31, 2**63, 10**30])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/examples/{}/approve"),
        ("patch", "/api/examples/{}"),
        ("get", "/api/runs/{}"),
        ("post", "/api/runs/{}/cancel"),
        ("get", "/api/snapshots/{}/train.jsonl"),
    ],
)
def test_ids_outside_the_database_range_are_422(client, method, path, bad_id):
    body = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    kwargs = {"json": body} if method == "patch" else {}
    response = getattr(client, method)(path.format(bad_id), **kwargs)
    assert response.status_code == 422, response.text


def test_a_largest_valid_id_is_a_plain_404(client):
    assert client.post(f"/api/examples/{2**31 - 1}/approve").status_code == 404


def test_an_edit_passes_the_same_checks_as_an_import(client, example_id, engine):
    def patch(messages: object) -> object:
        return client.patch(f"/api/examples/{example_id}", json={"messages": messages})

    too_long = patch(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "word " * 200}]
    )
    assert too_long.status_code == 422 and "over the limit of 60" in too_long.json()["detail"]
    role_list = patch([{"role": ["user"], "content": "hi"}, {"role": "assistant", "content": "x"}])
    assert role_list.status_code == 422 and "role must be a string" in role_list.json()["detail"]
    nan = client.patch(
        f"/api/examples/{example_id}",
        content=b'{"messages": [{"role": "user", "content": "hi"}, '
        b'{"role": "assistant", "content": "x", "weight": NaN}]}',
        headers={"Content-Type": "application/json"},
    )
    assert nan.status_code == 422
    extra = client.patch(f"/api/examples/{example_id}", json={"messages": [], "status": "x"})
    assert extra.status_code == 422
    with session_scope(engine) as session:
        stored = session.get(Example, example_id)
    assert stored.messages[-1]["content"].startswith(("About", "It's", "You", "We", "Our"))
    ok = patch(
        [
            {"role": "user", "content": "Call me on +14155550100", "name": "ana@gmail.com"},
            {"role": "assistant", "content": "Will do."},
        ]
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["messages"][0] == {
        "role": "user",
        "content": "Call me on <PHONE>",
        "name": "<EMAIL>",
    }


def test_large_bodies_are_refused_with_413(client, example_id):
    huge = {
        "messages": [
            {"role": "user", "content": "x" * 100_000},
            {"role": "assistant", "content": "y"},
        ]
    }
    response = client.patch(f"/api/examples/{example_id}", json=huge)
    assert response.status_code == 413
    streamed = client.post(
        "/api/runs",
        content=(b"{" + b" " * 10_000 for _ in range(10)),
        headers={"Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    nonsense = client.post("/api/runs", content=b"{}", headers={"Content-Length": "2x"})
    assert nonsense.status_code == 400


@pytest.mark.parametrize("body", [b"{not json", b"[" * 50_000, b'{"force": NaN}'])
def test_authentication_runs_before_the_body_is_read(client, body):
    anonymous = TestClient(client.app, raise_server_exceptions=False)
    for path in ("/api/runs", "/v1/chat/completions"):
        response = anonymous.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 401, response.text
        assert "bearer token" in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"
    oversized = anonymous.post("/api/runs", content=b"x" * 100_000)
    assert oversized.status_code == 401


def test_a_malformed_body_from_an_authenticated_caller_is_a_4xx(client, example_id):
    for body in (b"{not json", b"[" * 50_000 + b"]" * 50_000):
        response = client.patch(
            f"/api/examples/{example_id}",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert 400 <= response.status_code < 500, response.text
    assert json.loads(client.get("/healthz").text) == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/models/v1%00/promote"),
        ("post", "/api/models/v1%00/discard"),
        ("get", "/api/reports/v1%00"),
        ("get", "/api/audit?actor=ana%00"),
        ("get", "/api/audit?version=v1%00"),
    ],
)
def test_a_nul_character_in_a_name_is_a_4xx_not_a_500(client, method, path):
    response = getattr(client, method)(path)
    assert 400 <= response.status_code < 500, response.text


def test_an_edit_with_a_nul_character_is_a_422(client, example_id):
    messages = [
        {"role": "user", "content": "Hi\u0000 there"},
        {"role": "assistant", "content": "Hello."},
    ]
    response = client.patch(f"/api/examples/{example_id}", json={"messages": messages})
    assert response.status_code == 422 and "NUL" in response.text
