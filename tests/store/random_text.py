"""Seeded random strings for the redaction tables: each table keeps its own reproducible stream."""

from __future__ import annotations

import random
import string

ALNUM = string.ascii_letters + string.digits


class RandomText:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def rand(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self._rng.choice(alphabet) for _ in range(n))

    def digits(self, n: int) -> str:
        return self.rand(n, string.digits)

    def hexs(self, n: int) -> str:
        return self.rand(n, "0123456789abcdef")
