"""The production signal over REST: per version, for all versions, windows validated."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from brandvoice.bot.settings import Settings
from brandvoice.bot.web import create_app
from brandvoice.store.db import session_scope
from brandvoice.store.signal import VersionSignal
from tests.signal_data import promoted_after, serve

TOKEN = "s3cret-token"


def _unused_loader(version):  # the signal routes never make a model speak
    raise AssertionError("no model should be loaded")


@pytest.fixture
def client(engine, tmp_path) -> TestClient:
    settings = Settings(api_token=TOKEN, artifacts_dir=tmp_path, _env_file=None)
    app = create_app(settings, engine, backend_loader=_unused_loader)
    return TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})


def test_the_signal_of_a_version_and_of_all_versions(client, engine):
    promotion = promoted_after(engine, before=(10, 2), after=(8, 4), by="U0CURATOR")
    with session_scope(engine) as session:
        serve(session, None, voted=3, downvoted=0, at=promotion.promoted_at)

    v2 = client.get("/api/models/v2/signal")
    assert v2.status_code == 200
    body = v2.json()
    assert VersionSignal.model_validate(body).version == "v2"
    assert (body["served"], body["up_votes"], body["down_votes"]) == (8, 4, 4)
    assert body["down_rate"]["count"] == 4 and body["down_rate"]["of"] == 8
    assert (
        round(body["down_rate"]["low"], 3) == 0.215 and round(body["down_rate"]["high"], 3) == 0.785
    )
    assert (body["approval_rate"]["rate"], body["approval_rate"]["low"]) == (0.0, 0.0)
    assert client.get("/api/models/base/signal").json()["served"] == 3

    listed = client.get("/api/signal").json()
    assert [s["version"] for s in listed] == ["v2", "v1", "base model"]
    assert [
        s["served"] for s in client.get("/api/signal", params={"offset": 1, "limit": 1}).json()
    ] == [10]
    # v1 served an hour before the promotion, the base model at it and v2 a minute after it:
    # the last half hour holds the base model's and v2's replies only.
    recent = client.get("/api/signal", params={"window_hours": 0.5}).json()
    assert {s["version"]: s["served"] for s in recent} == {"v2": 8, "v1": 0, "base model": 3}


def test_bad_names_and_windows_are_refused(client, engine):
    promoted_after(engine, before=(1, 0), after=(1, 0), by="U0CURATOR")
    assert client.get("/api/models/v9/signal").status_code == 404
    for params in ({"window_hours": 0}, {"window_hours": -1}, {"window_hours": "week"}):
        assert client.get("/api/models/v1/signal", params=params).status_code == 422
    assert client.get("/api/signal", params={"limit": 0}).status_code == 422
    assert TestClient(client.app).get("/api/signal").status_code == 401
