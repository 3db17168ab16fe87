"""A small bounded cache for long-running processes: entries expire after ``ttl`` seconds,
the least recently used go first past ``size``, and concurrent misses of one key load it
once. Thread-safe."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        if size < 1 or ttl <= 0:
            raise ValueError(f"cache size must be at least 1 and ttl positive, got {size}, {ttl}")
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[K, threading.Lock] = {}

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            value, stored_at = found
            if self.clock() - stored_at >= self.ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = (value, self.clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def get_or_load(
        self, key: K, load: Callable[[], V], fresh: Callable[[V], bool] | None = None
    ) -> V:
        """The cached value (if ``fresh`` accepts it), else ``load()``'s, stored; threads
        missing the same key together wait for one load."""
        value = self.get(key)
        if value is not None and (fresh is None or fresh(value)):
            return value
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        try:
            with loading:
                value = self.get(key)
                if value is not None and (fresh is None or fresh(value)):
                    return value
                value = load()
                self.put(key, value)
                return value
        finally:
            with self._lock:
                if not loading.locked():
                    self._loading.pop(key, None)

    def discard(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def discard_where(self, matches: Callable[[K], bool]) -> None:
        with self._lock:
            for key in [k for k in self._entries if matches(k)]:
                del self._entries[key]

    def keys(self) -> list[K]:
        """The keys held now, expired ones included until they are read or pushed out."""
        with self._lock:
            return list(self._entries)

    def values(self) -> list[V]:
        """What is cached now, expired entries included (for closing them)."""
        with self._lock:
            return [value for value, _ in self._entries.values()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
