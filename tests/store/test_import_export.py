from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from brandvoice.samples import sample_examples_path
from brandvoice.store.db import make_engine, session_scope
from brandvoice.store.importer import ImportRefused, import_jsonl, iter_export
from brandvoice.store.jsonl import validate_file
from brandvoice.store.models import Example, Split
from tests.conftest import TEST_DATA

BAD = TEST_DATA / "bad_examples.jsonl"
GOOD = TEST_DATA / "good_examples.jsonl"


def _count(engine) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(Example)).one()


def test_validation_reports_every_bad_line_with_file_line_and_reason(count_tokens):
    report = validate_file(BAD, count_tokens)
    assert [p.line for p in report.problems] == list(range(2, 12))
    kinds = [p.kind for p in report.problems]
    assert kinds == [
        "not_json",
        "not_object",
        "missing_messages",
        "messages_not_list",
        "missing_role",
        "missing_content",
        "unrecognized_key",
        "unknown_role",
        "empty_content",
        "no_assistant",
    ]
    assert str(report.problems[0]).startswith(f"{BAD}:2: not valid JSON")
    assert report.warnings["no_system_message"] == 1
    assert [r.line for r in report.records] == [1, 12, 13, 14]


def test_token_limit_is_counted_like_the_cookbook(tmp_path, count_tokens):
    path = tmp_path / "long.jsonl"
    long = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "word" + " word" * 49},
        ]
    }
    path.write_text(json.dumps(long) + "\n")
    tokens = count_tokens([long["messages"]])[0]
    # 3 priming + 2 messages x 3 + role and content tokens
    assert tokens == 3 + 2 * 3 + 1 + 1 + 1 + 50
    assert validate_file(path, count_tokens, max_tokens=tokens).ok
    report = validate_file(path, count_tokens, max_tokens=tokens - 1)
    assert report.problems[0].kind == "too_long"
    assert f"{tokens} tokens is over the limit of {tokens - 1}" in str(report.problems[0])


def test_import_with_a_bad_line_imports_nothing(engine, count_tokens):
    with pytest.raises(ImportRefused) as refused, session_scope(engine) as session:
        import_jsonl(session, BAD, count_tokens)
    assert len(refused.value.report.problems) == 10
    assert _count(engine) == 0


def test_skip_invalid_imports_the_good_lines_and_skips_duplicates(engine, count_tokens):
    with session_scope(engine) as session:
        result = import_jsonl(session, BAD, count_tokens, skip_invalid=True)
    assert (result.inserted, result.duplicates, len(result.report.problems)) == (3, 1, 10)
    with session_scope(engine) as session:
        again = import_jsonl(session, BAD, count_tokens, skip_invalid=True)
    assert (again.inserted, again.duplicates) == (0, 4)
    assert _count(engine) == 3


def test_export_reproduces_exactly_the_imported_messages_in_order(engine, count_tokens, tmp_path):
    with session_scope(engine) as session:
        import_jsonl(session, GOOD, count_tokens)
    with session_scope(engine) as session:
        exported = list(iter_export(session))
    original = [json.loads(line)["messages"] for line in GOOD.read_text().splitlines()]
    assert exported == original
    with session_scope(engine) as session:
        train = list(iter_export(session, Split.TRAIN))
        val = list(iter_export(session, Split.VAL))
    assert sorted(map(json.dumps, train + val)) == sorted(map(json.dumps, original))


def test_duplicates_differing_only_in_case_and_spacing_are_skipped(engine, count_tokens, tmp_path):
    path = tmp_path / "dupes.jsonl"
    a = {
        "messages": [
            {"role": "user", "content": "Hello  there"},
            {"role": "assistant", "content": "Hi!"},
        ]
    }
    b = {
        "messages": [
            {"role": "user", "content": "hello there "},
            {"role": "assistant", "content": "HI!"},
        ]
    }
    path.write_text(json.dumps(a) + "\n" + json.dumps(b) + "\n")
    with session_scope(engine) as session:
        result = import_jsonl(session, path, count_tokens)
    assert (result.inserted, result.duplicates) == (1, 1)


def test_secrets_and_personal_data_are_redacted_on_the_way_in(engine, count_tokens, tmp_path):
    path = tmp_path / "secrets.jsonl"
    content = "Mail ana@example.com, token xoxb-123456789012-abcdefABCDEF, card 4242 4242 4242 4242"
    row = {
        "messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "Ok"}]
    }
    path.write_text(json.dumps(row) + "\n")
    with session_scope(engine) as session:
        result = import_jsonl(session, path, count_tokens)
    assert result.redactions == {"EMAIL": 1, "SLACK_TOKEN": 1, "CARD_NUMBER": 1}
    with session_scope(engine) as session:
        stored = session.exec(select(Example)).one()
    assert stored.messages[0]["content"] == "Mail <EMAIL>, token <SLACK_TOKEN>, card <CARD_NUMBER>"
    assert stored.redactions == {"EMAIL": 1, "SLACK_TOKEN": 1, "CARD_NUMBER": 1}


def test_a_crash_mid_import_leaves_the_store_as_it_was(engine, count_tokens):
    def counter_failing_the_last_row(conversations):
        # the earlier rows are inserted, then the last one breaks a NOT NULL constraint
        counts = count_tokens(conversations)
        return [*counts[:-1], None] if counts else counts

    with pytest.raises(IntegrityError), session_scope(engine) as session:
        import_jsonl(session, sample_examples_path(), counter_failing_the_last_row)
    assert _count(engine) == 0


def _import_in_process(url: str, path: str, barrier) -> None:  # type: ignore[no-untyped-def]
    from brandvoice.inference.tokens import count_chat_tokens_batch

    engine = make_engine(url)
    barrier.wait()
    with session_scope(engine) as session:
        import_jsonl(session, Path(path), count_chat_tokens_batch)


def test_two_processes_importing_the_same_file_never_create_duplicates(engine, database_url):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    path = str(sample_examples_path())
    workers = [
        context.Process(target=_import_in_process, args=(database_url, path, barrier))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    lines = [line for line in sample_examples_path().read_text().splitlines() if line.strip()]
    assert _count(engine) == len(lines)
