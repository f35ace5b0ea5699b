"""One bounded cache of loaded chat backends, least recently used out first.

Loading a model or a LoRA adapter is slow, so a process keeps the backends it built; but a web
process asked for many versions would otherwise keep every adapter in memory forever. The cache
holds at most ``max_backends`` backends and at most ``max_adapter_bytes`` of adapter weights
(what :attr:`LocalChat.adapter_bytes` reports; hosted backends weigh nothing). Past either bound
the least recently used backends are released (:meth:`LocalChat.release` frees the adapter, which
a caller still holding that backend reloads on its next call) until the cache fits again; the
backend just asked for always stays.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

from brandvoice.inference.chat import ChatBackend

if TYPE_CHECKING:
    from brandvoice.store.models import ModelVersion

BackendLoader = Callable[["ModelVersion | None"], ChatBackend]
"""Makes (or finds loaded) the backend that serves a registry version; None: the base model."""


def adapter_bytes(backend: ChatBackend) -> int:
    return int(getattr(backend, "adapter_bytes", 0) or 0)


def release(backend: ChatBackend) -> None:
    """Free what ``backend`` holds in memory, where it can (a local adapter)."""
    free = getattr(backend, "release", None)
    if callable(free):
        free()


class BackendCache:
    """``cache.get(key, build)``: the cached backend for ``key``, built on first use."""

    def __init__(self, max_backends: int = 8, max_adapter_bytes: int = 1 << 30) -> None:
        if max_backends < 1:
            raise ValueError(f"max_backends must be at least 1, got {max_backends}")
        if max_adapter_bytes < 0:
            raise ValueError(f"max_adapter_bytes must not be negative, got {max_adapter_bytes}")
        self.max_backends = max_backends
        self.max_adapter_bytes = max_adapter_bytes
        self._entries: OrderedDict[Hashable, ChatBackend] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], ChatBackend]) -> ChatBackend:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        # Built outside the lock: loading is slow, and other keys must stay answerable meanwhile.
        backend = build()
        with self._lock:
            if key in self._entries:  # another thread built it first; keep theirs
                self._entries.move_to_end(key)
                return self._entries[key]
            self._entries[key] = backend
            evicted = self._evict()
        for old in evicted:
            release(old)
        return backend

    def keys(self) -> list[Hashable]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    @property
    def adapter_bytes(self) -> int:
        with self._lock:
            return sum(adapter_bytes(b) for b in self._entries.values())

    def _evict(self) -> list[ChatBackend]:
        """Oldest first past the count; past the memory, the oldest that holds adapter weights
        (dropping a backend that weighs nothing would free nothing). The newest always stays."""
        evicted = []
        while len(self._entries) > self.max_backends:
            evicted.append(self._entries.popitem(last=False)[1])
        while sum(adapter_bytes(b) for b in self._entries.values()) > self.max_adapter_bytes:
            older = list(self._entries)[:-1]
            heavy = next((k for k in older if adapter_bytes(self._entries[k]) > 0), None)
            if heavy is None:
                break
            evicted.append(self._entries.pop(heavy))
        return evicted

    def clear(self) -> None:
        with self._lock:
            evicted = list(self._entries.values())
            self._entries.clear()
        for old in evicted:
            release(old)
