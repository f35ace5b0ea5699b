"""``brandvoice knowledge``: add, list and remove files, as a user runs them."""

from __future__ import annotations

from brandvoice.samples import sample_knowledge_paths
from tests.cli.test_data_commands import run  # noqa: F401  (the fixture)

FILES = [str(p) for p in sample_knowledge_paths()]
WIDE = {"COLUMNS": "200", "REDACT_ALLOW": "pebbleandpine.example"}


def test_add_list_refuse_a_bad_file_and_remove(run, tmp_path):  # noqa: F811
    added = run("knowledge", "add", *FILES, env=WIDE)
    assert added.returncode == 0, added.stderr
    assert f"knowledge: {len(FILES)} added;" in added.stdout and "chunk(s) written" in added.stdout
    assert "redaction" not in added.stdout, "the team's own address is kept"

    listed = run("knowledge", "list", env=WIDE)
    assert listed.returncode == 0, listed.stderr
    for name, title in (("policies.md", "Policies"), ("products.md", "Pebble & Pine products")):
        assert name in listed.stdout and title in listed.stdout

    binary = tmp_path / "logo.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    bad = run("knowledge", "add", FILES[0], str(binary), env=WIDE)
    assert bad.returncode == 2
    assert f"{binary.name}: a binary file" in bad.stderr and "Traceback" not in bad.stderr

    removed = run("knowledge", "remove", "shipping.md", env=WIDE)
    assert removed.returncode == 0, removed.stderr
    assert "removed shipping.md (Shipping)" in removed.stdout
    missing = run("knowledge", "remove", "shipping.md", env=WIDE)
    assert missing.returncode == 2
    assert (
        "no knowledge file named 'shipping.md' (known: care.md, co-op.md, policies.md, products.md)"
        in missing.stderr
    )
