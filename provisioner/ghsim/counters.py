"""What the simulator answered: calls by endpoint template and status, by credential (its
non-secret key: ``pat:1``, ``installation:7``) and status, and fault counts."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict

EVENTS = (
    "primary_rate_limited",
    "secondary_rate_limited",
    "errors_injected",
    "slow",
    "dropped",
    "access_token_requests",
    "registrations_capped",
)


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._by_credential: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._events: Counter[str] = Counter()
        self._in_flight = 0
        self._max_in_flight = 0

    def record(self, endpoint: str, outcome: int | str, credential: str | None = None) -> None:
        with self._lock:
            self._calls[endpoint][str(outcome)] += 1
            if credential is not None:
                self._by_credential[credential][str(outcome)] += 1

    def event(self, name: str) -> None:
        with self._lock:
            self._events[name] += 1

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            by_status: Counter[str] = Counter()
            for outcomes in self._calls.values():
                by_status.update(outcomes)
            return {
                "calls": {endpoint: dict(outcomes) for endpoint, outcomes in self._calls.items()},
                "by_credential": {
                    credential: dict(outcomes)
                    for credential, outcomes in self._by_credential.items()
                },
                "by_status": dict(by_status),
                "total": sum(by_status.values()),
                **{name: self._events[name] for name in EVENTS},
                "max_concurrent": self._max_in_flight,
            }

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            self._by_credential.clear()
            self._events.clear()
            self._max_in_flight = self._in_flight
