"""Fixtures for the inference tests: the fake OpenAI server, and models loaded offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.fakes import openai_server  # re-exported as a fixture

__all__ = ["openai_server"]
