"""Near duplicates by ROUGE-L, as Self-Instruct filters them, made fast with MinHash LSH.

ROUGE-L F1 between two texts is ``2·LCS / (m + n)`` over their tokens (lower-cased alphanumeric runs,
as ``rouge_score`` tokenizes). Comparing every candidate with every example is quadratic, so a
banded LSH index over MinHash sketches of each text's content words proposes the few stored texts
that could be close, and the exact ROUGE-L decides: rapidfuzz's bit-parallel LCS runs on strings in
which every distinct token is one character.

The sketches use datasketch's permutation family (its ``affine32`` scheme: the murmur finalizer,
then ``a·h + b mod 2**32``), computed for thousands of texts at once in numpy. The band tables are
plain dicts keyed by one integer per band: datasketch's ``MinHashLSH`` spends about 0.1 ms of
Python per insert or query, which alone would take 100k candidates past the 30 s budget.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash
from rapidfuzz.distance import LCSseq
from rapidfuzz.process import cdist

ROUGE_L_THRESHOLD = 0.7
"""Self-Instruct drops a new instruction whose ROUGE-L with any existing one is above 0.7."""

_STOP_WORDS_TEXT = """
a about after all also am an and any are as at be because been before being but by can could did
do does doing for from had has have having he her here hers him his how i if in into is it its
just me more most my no nor not now of off on once only or other our ours out over own same she
should so some such than that the their theirs them then there these they this those through to
too under until up very was we were what when where which while who whom why will with would you
your yours
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
"""Left out of the sketches (never out of the exact score): they make unrelated texts look alike."""

_TOKEN = re.compile(r"[a-z0-9]+")
_BAND_MIX = np.uint64(0x9E3779B97F4A7C15)
_SKETCH_CHUNK = 2048
_BULK_VERIFY = 64


def rouge_tokens(text: str) -> list[str]:
    """Tokens as ``rouge_score`` makes them: lower-case, non-alphanumerics as separators."""
    return _TOKEN.findall(text.lower())


def rouge_l_tokens(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 of two token sequences (0 when either is empty)."""
    if not a or not b:
        return 0.0
    return 2.0 * LCSseq.similarity(a, b) / (len(a) + len(b))


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 of two texts."""
    return rouge_l_tokens(rouge_tokens(a), rouge_tokens(b))


def naive_matches(
    text: str, others: Sequence[str], threshold: float = ROUGE_L_THRESHOLD
) -> list[int]:
    """Indexes of ``others`` whose ROUGE-L with ``text`` is above ``threshold``: the exact baseline."""
    tokens = rouge_tokens(text)
    return [
        i
        for i, other in enumerate(others)
        if rouge_l_tokens(tokens, rouge_tokens(other)) > threshold
    ]


@dataclass(frozen=True)
class NearDupMatch:
    key: Hashable
    score: float


@dataclass(frozen=True)
class PreparedText:
    """A text ready for the index: its tokens as one character each, and one LSH key per band."""

    codes: str
    band_keys: tuple[int, ...]


class _Codebook(dict[str, str]):
    """Token -> one character; stop words take the lowest code points so they are easy to skip."""

    def __init__(self, stop_words: Iterable[str]) -> None:
        super().__init__()
        for word in sorted(set(stop_words)):
            self.__missing__(word)
        self.stop_count = len(self)

    def __missing__(self, token: str) -> str:
        ordinal = len(self) + 1
        char = self[token] = chr(ordinal if ordinal < 0xD800 else ordinal + 0x800)
        return char

    def encode(self, text: str) -> str:
        return "".join(map(self.__getitem__, rouge_tokens(text)))


class NearDupIndex:
    """Stored texts that new texts are checked against; add a text once it is accepted.

    Two texts whose content-word sets have Jaccard similarity ``s`` share a band with probability
    ``1 - (1 - s**rows)**bands``. With the defaults (32 bands of 4) that is 0.93 at ``s = 0.53``
    and 0.99 from ``s = 0.6``; pairs with ROUGE-L just above 0.7 lie from about 0.53 up (99% of
    them above 0.59 in the benchmark), while unrelated texts of one brand (``s`` around 0.02,
    0.09 for the closest 1%) rarely meet. Proposed pairs are then scored exactly.
    """

    def __init__(
        self,
        threshold: float = ROUGE_L_THRESHOLD,
        *,
        bands: int = 32,
        rows: int = 4,
        seed: int = 1,
        stop_words: Iterable[str] = STOP_WORDS,
    ) -> None:
        self.threshold = threshold
        self.bands, self.rows = bands, rows
        a, b = MinHash(num_perm=bands * rows, seed=seed, scheme="affine32").permutations
        self._a = np.asarray(a, dtype=np.uint32)
        self._b = np.asarray(b, dtype=np.uint32)
        self._codebook = _Codebook(stop_words)
        self._keys: list[Hashable] = []
        self._codes: list[str] = []
        self._known: set[Hashable] = set()
        self._tables: list[dict[int, list[int]]] = [{} for _ in range(bands)]

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._known

    def prepare(self, texts: Sequence[str]) -> list[PreparedText]:
        """Tokenize and sketch many texts at once (the sketches are computed in numpy batches)."""
        codes = [self._codebook.encode(text) for text in texts]
        keys: list[tuple[int, ...]] = []
        for start in range(0, len(codes), _SKETCH_CHUNK):
            keys.extend(self._band_keys(codes[start : start + _SKETCH_CHUNK]))
        return [PreparedText(c, k) for c, k in zip(codes, keys, strict=True)]

    def add(self, key: Hashable, text: PreparedText | str) -> None:
        prepared = self.prepare([text])[0] if isinstance(text, str) else text
        if key in self._known:
            raise ValueError(f"near-duplicate index already holds key {key!r}")
        slot = len(self._keys)
        self._keys.append(key)
        self._codes.append(prepared.codes)
        self._known.add(key)
        for table, band_key in zip(self._tables, prepared.band_keys, strict=False):
            bucket = table.get(band_key)
            if bucket is None:
                table[band_key] = [slot]
            else:
                bucket.append(slot)

    def add_many(self, items: Iterable[tuple[Hashable, str]]) -> None:
        pairs = list(items)
        for (key, _), prepared in zip(
            pairs, self.prepare([text for _, text in pairs]), strict=True
        ):
            self.add(key, prepared)

    def matches(
        self, text: PreparedText | str, threshold: float | None = None
    ) -> list[NearDupMatch]:
        """Stored texts whose exact ROUGE-L with ``text`` is above ``threshold``, best first."""
        limit = self.threshold if threshold is None else threshold
        prepared = self.prepare([text])[0] if isinstance(text, str) else text
        proposed: set[int] = set()
        for table, band_key in zip(self._tables, prepared.band_keys, strict=False):
            bucket = table.get(band_key)
            if bucket is not None:
                proposed.update(bucket)
        if not proposed:
            return []
        codes, n = prepared.codes, len(prepared.codes)
        if len(proposed) > _BULK_VERIFY:
            return self._verify_bulk(codes, list(proposed), limit)
        similarity = LCSseq.similarity
        found = []
        for slot in proposed:
            other = self._codes[slot]
            total = n + len(other)
            if 2.0 * min(n, len(other)) <= limit * total:  # the LCS is at most the shorter text
                continue
            score = 2.0 * similarity(codes, other) / total
            if score > limit:
                found.append(NearDupMatch(self._keys[slot], score))
        return sorted(found, key=lambda match: -match.score)

    def _verify_bulk(self, codes: str, slots: list[int], limit: float) -> list[NearDupMatch]:
        """Many proposals (texts of a crowded bucket): one multi-threaded rapidfuzz call."""
        others = [self._codes[slot] for slot in slots]
        lcs = cdist([codes], others, scorer=LCSseq.similarity, dtype=np.int32, workers=-1)[0]
        total = np.fromiter(map(len, others), dtype=np.int64, count=len(others)) + len(codes)
        scores = 2.0 * lcs / np.maximum(total, 1)
        found = [
            NearDupMatch(self._keys[slots[i]], float(scores[i]))
            for i in np.flatnonzero(scores > limit).tolist()
        ]
        return sorted(found, key=lambda match: -match.score)

    def best_match(self, text: PreparedText | str) -> NearDupMatch | None:
        """The closest stored text the LSH proposes, with its exact ROUGE-L (None if none)."""
        found = self.matches(text, threshold=-1.0)
        return found[0] if found else None

    def _band_keys(self, codes: list[str]) -> list[tuple[int, ...]]:
        """MinHash of each text's content-word ids, folded into one integer per band.

        A text with no content words is sketched from all its words; an empty text gets no keys.
        """
        ids = np.frombuffer("".join(codes).encode("utf-32-le"), dtype=np.uint32)
        lengths = np.fromiter(map(len, codes), dtype=np.int64, count=len(codes))
        owner = np.repeat(np.arange(len(codes)), lengths)
        content = ids > self._codebook.stop_count
        has_content = np.bincount(owner[content], minlength=len(codes)) > 0
        keep = content | ~has_content[owner]
        ids, owner = ids[keep], owner[keep]
        out: list[tuple[int, ...]] = [()] * len(codes)
        if ids.size == 0:
            return out
        # Repeated words change no minimum: sketch each text's distinct ids only.
        pairs = np.unique((owner.astype(np.uint64) << np.uint64(32)) | ids.astype(np.uint64))
        owner = (pairs >> np.uint64(32)).astype(np.int64)
        hashed = _fmix32(pairs.astype(np.uint32))
        permuted = hashed[:, None] * self._a + self._b  # uint32 arithmetic wraps: mod 2**32
        present = np.flatnonzero(np.bincount(owner, minlength=len(codes)))
        minima = np.minimum.reduceat(permuted, np.searchsorted(owner, present), axis=0)
        bands = minima.reshape(len(present), self.bands, self.rows).astype(np.uint64)
        folded = bands[:, :, 0]
        for row in range(1, self.rows):
            folded = folded * _BAND_MIX + bands[:, :, row]
        for doc, keys in zip(present.tolist(), folded.tolist(), strict=True):
            out[doc] = tuple(keys)
        return out


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (uint32 arithmetic wraps), so that sequential token ids
    permute like random hashes."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))
