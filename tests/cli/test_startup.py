"""Commands that only read or write the store start without loading the ML stack."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "openai", "datasketch", "scipy")


def test_the_command_line_loads_no_model_library_until_a_command_needs_one() -> None:
    probe = (
        "import sys; import brandvoice.bot.cli; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"importing the CLI loaded {loaded}"
