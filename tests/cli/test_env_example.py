"""``.env.example`` is kept by hand: it must name every setting, with its description."""

from __future__ import annotations

import re
from pathlib import Path

from brandvoice.bot.settings import Settings

ENV_EXAMPLE = Path(__file__).parents[2] / ".env.example"


def test_env_example_lists_every_setting_with_its_description():
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    listed = re.findall(r"^# (.*)\n([A-Z0-9_]+)=", text, flags=re.M)

    assert sorted(name for _, name in listed) == sorted(n.upper() for n in Settings.model_fields)
    for description, name in listed:
        assert description == Settings.model_fields[name.lower()].description, name
