"""Scale-set keys waiting to be reconciled: each key at most once, at its earliest due time, so
a burst of watch events for one scale set becomes one reconciliation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class KeyQueue:
    """Scale-set keys due for reconciliation, each at most once, at its earliest due time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._due: dict[str, float] = {}
        self._cond = threading.Condition()

    def add(self, key: str, delay: float = 0.0) -> None:
        due = self.clock() + delay
        with self._cond:
            if key not in self._due or due < self._due[key]:
                self._due[key] = due
                self._cond.notify()

    def get(self, timeout: float) -> str | None:
        """The key due first, once due; None after ``timeout`` with nothing due."""
        end = self.clock() + timeout
        with self._cond:
            while True:
                now = self.clock()
                if self._due:
                    key, due = min(self._due.items(), key=lambda item: item[1])
                    if due <= now:
                        del self._due[key]
                        return key
                    wait = min(due, end) - now
                else:
                    wait = end - now
                if wait <= 0:
                    return None
                self._cond.wait(wait)

    def __len__(self) -> int:
        with self._cond:
            return len(self._due)
