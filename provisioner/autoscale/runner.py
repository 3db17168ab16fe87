"""The autoscaler's periodic work in background threads: sync replicas, poll GitHub."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from provisioner.autoscale.service import Autoscaler

log = logging.getLogger(__name__)


class AutoscalerLoops:
    """Sync every ``sync_interval_s``; poll every ``poll_interval_s`` (0: never)."""

    def __init__(
        self, autoscaler: Autoscaler, sync_interval_s: float, poll_interval_s: float
    ) -> None:
        self.autoscaler = autoscaler
        self.sync_interval_s = sync_interval_s
        self.poll_interval_s = poll_interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> AutoscalerLoops:
        self._spawn("autoscale-sync", self.autoscaler.sync, self.sync_interval_s)
        if self.poll_interval_s > 0:
            self._spawn("autoscale-poll", self.autoscaler.poll, self.poll_interval_s)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    def _spawn(self, name: str, work: Callable[[], object], interval_s: float) -> None:
        thread = threading.Thread(
            target=self._every, args=(name, work, interval_s), name=name, daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _every(self, name: str, work: Callable[[], object], interval_s: float) -> None:
        while not self._stop.is_set():
            try:
                work()
            except Exception:
                # Redis or the API server may be away for a moment; the next pass retries.
                log.warning("%s pass failed", name, exc_info=True)
            self._stop.wait(interval_s)
