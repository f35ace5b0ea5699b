"""``GET /api/pairs`` and a snapshot's preference files over the REST API."""

from __future__ import annotations

import json

from brandvoice.store.db import session_scope
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.feedback import record_interaction, submit_correction
from brandvoice.store.models import ExampleSource
from brandvoice.store.snapshots import snapshot_dataset
from tests.api.test_rest import client  # noqa: F401  (the fixture)


def seed(engine, count_tokens, n: int = 6) -> None:
    with session_scope(engine) as session:
        add_examples(
            session,
            [
                NewExample(
                    [
                        {"role": "user", "content": f"q{i}"},
                        {"role": "assistant", "content": f"a{i}"},
                    ],
                    ExampleSource.IMPORT,
                )
                for i in range(10)
            ],
            count_tokens,
        )
        for i in range(n):
            interaction = record_interaction(
                session,
                channel="C",
                message_ts=str(i),
                prompt_messages=[{"role": "user", "content": f"question {i}"}],
                reply=f"bad {i}",
            )
            submit_correction(
                session,
                interaction,
                f"good {i}",
                user="U",
                approved=True,
                count_tokens=count_tokens,
            )


def test_pairs_are_listed_with_paging_and_filters(client, engine, count_tokens):  # noqa: F811
    seed(engine, count_tokens)
    everything = client.get("/api/pairs").json()
    assert [p["chosen"] for p in everything] == [f"good {i}" for i in range(6)]
    assert everything[0]["rejected"] == "bad 0" and everything[0]["source"] == "correction"
    assert everything[0]["provenance"]["corrected_by"] == "U"
    page = client.get("/api/pairs", params={"limit": 2, "offset": 3}).json()
    assert [p["id"] for p in page] == [p["id"] for p in everything[3:5]]
    train = client.get("/api/pairs", params={"split": "train"}).json()
    val = client.get("/api/pairs", params={"split": "val"}).json()
    assert sorted(p["id"] for p in train + val) == [p["id"] for p in everything]
    assert client.get("/api/pairs", params={"source": "downvote"}).json() == []
    for params in ({"limit": 0}, {"offset": -1}, {"source": "nope"}, {"split": "test"}):
        assert client.get("/api/pairs", params=params).status_code == 422, params


def test_a_snapshots_preference_files_download(client, engine, count_tokens, tmp_path):  # noqa: F811
    seed(engine, count_tokens)
    with session_scope(engine) as session:
        snapshot, _ = snapshot_dataset(session, tmp_path)
    stats = snapshot.stats["preference"]
    for split in ("preference_train", "preference_val"):
        response = client.get(f"/api/snapshots/{snapshot.id}/{split}.jsonl")
        assert response.status_code == 200
        rows = [json.loads(line) for line in response.text.splitlines()]
        assert len(rows) == stats[split.removeprefix("preference_")]
        assert all(set(row) == {"prompt", "chosen", "rejected"} for row in rows)
    assert client.get(f"/api/snapshots/{snapshot.id}/pairs.jsonl").status_code == 422
