"""The CLI as a user runs it: a real process, its exit code and what it prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_DATA

CLI = [sys.executable, "-m", "brandvoice"]


@pytest.fixture
def run(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    base_env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
    }

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            cwd=tmp_path,
            env={**base_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def test_import_with_bad_lines_exits_2_with_one_line_per_problem_and_no_traceback(run):
    result = run("import", str(TEST_DATA / "bad_examples.jsonl"))
    assert result.returncode == 2
    assert f"{TEST_DATA / 'bad_examples.jsonl'}:2: not valid JSON" in result.stderr
    assert "nothing imported" in result.stderr
    assert "Traceback" not in result.stderr
    stats = run("dataset", "stats")
    assert "approved" not in stats.stdout


def test_import_export_round_trip_and_snapshot(run, tmp_path):
    good = TEST_DATA / "good_examples.jsonl"
    imported = run("import", str(good))
    assert imported.returncode == 0, imported.stderr
    assert "imported 6 example(s)" in imported.stdout
    out = tmp_path / "out.jsonl"
    assert run("export", "--out", str(out)).returncode == 0
    original = [json.loads(line) for line in good.read_text().splitlines()]
    assert [json.loads(line) for line in out.read_text().splitlines()] == original
    snapshot = run("dataset", "snapshot")
    assert snapshot.returncode == 0, snapshot.stderr
    assert "snapshot 1 created" in snapshot.stdout


def test_missing_file_and_unknown_example_are_one_clear_line(run):
    missing = run("import", "nope.jsonl")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: nope.jsonl: no such file"
    unknown = run("examples", "approve", "999")
    assert unknown.returncode == 2
    assert "example 999 does not exist" in unknown.stderr
    bad_split = run("export", "--split", "test")
    assert bad_split.returncode == 2 and "--split must be train, val or all" in bad_split.stderr


def test_hostile_lines_are_one_line_each_and_skippable(run, tmp_path):
    from tests.store.test_import_hostile import GOOD_A, GOOD_B, HOSTILE

    path = tmp_path / "hostile.jsonl"
    cases = sorted(HOSTILE)
    path.write_bytes(
        b"\n".join([GOOD_A.encode(), *(HOSTILE[c][0] for c in cases), GOOD_B.encode()]) + b"\n"
    )
    refused = run("import", str(path))
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    for line, case in enumerate(cases, start=2):
        assert f"{path}:{line}: " in refused.stderr, case
        assert HOSTILE[case][1] in refused.stderr, case
    assert "nothing imported" in refused.stderr

    skipped = run("import", "--skip-invalid", str(path))
    assert skipped.returncode == 2 and "Traceback" not in skipped.stderr
    assert "imported 2 example(s)" in skipped.stdout
    out = tmp_path / "out.jsonl"
    assert run("export", "--out", str(out)).returncode == 0
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert exported == [json.loads(GOOD_A), json.loads(GOOD_B)]


def test_redact_allow_keeps_the_brands_addresses_and_stats_count_them(run, tmp_path):
    path = tmp_path / "brand.jsonl"
    row = {
        "messages": [
            {"role": "user", "content": "Where do I send my return? I'm ana@gmail.com"},
            {
                "role": "assistant",
                "content": "Write to help@yourbrand.example or call 415-555-0100.",
            },
        ]
    }
    path.write_text(json.dumps(row) + "\n")
    env = {"REDACT_ALLOW": "yourbrand.example, +1 (415) 555-0100"}
    imported = run("import", str(path), env=env)
    assert imported.returncode == 0, imported.stderr
    assert "1 redaction(s), 2 kept by REDACT_ALLOW" in imported.stdout
    out = tmp_path / "out.jsonl"
    assert run("export", "--out", str(out)).returncode == 0
    [exported] = [json.loads(line) for line in out.read_text().splitlines()]
    assert exported["messages"][0]["content"].endswith("I'm <EMAIL>")
    assert exported["messages"][1]["content"] == row["messages"][1]["content"]
    stats = run("dataset", "stats")
    assert "allowed by REDACT_ALLOW" in stats.stdout
    allowed_row = next(line for line in stats.stdout.splitlines() if "REDACT_ALLOW" in line)
    assert allowed_row.split()[-2] == "2"
