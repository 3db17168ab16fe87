"""Runner registrations per scope, as GitHub keeps them: unique names, offline until started."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

RunnerState = Literal["online", "busy", "idle", "offline", "finished"]
RUNNER_STATES: tuple[str, ...] = ("online", "busy", "idle", "offline", "finished")
READ_ONLY_LABELS = ("self-hosted",)
RUNNER_VERSION = "2.323.0"


class DuplicateRunner(Exception):
    """A runner of that name is already registered in the scope."""


class RunnerIsBusy(Exception):
    """The runner is running a job; GitHub refuses to delete it."""


class UnknownRunner(Exception):
    """No runner of that id or name in the scope."""


class RunnerGroupFull(Exception):
    """The runner group already holds as many runners as GitHub allows."""


@dataclass
class Registration:
    id: int
    name: str
    scope: str
    runner_group_id: int
    labels: list[dict[str, object]]
    status: Literal["online", "offline"] = "offline"
    busy: bool = False
    os: str = "unknown"
    version: str | None = None

    def to_github(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "os": self.os,
            "status": self.status,
            "busy": self.busy,
            "ephemeral": True,
            "runner_group_id": self.runner_group_id,
            "version": self.version,
            "labels": self.labels,
        }

    def to_admin(self) -> dict[str, object]:
        return {**self.to_github(), "scope": self.scope}


@dataclass
class RunnerRegistry:
    """All registrations; thread-safe. Scopes are lower-cased paths such as ``repos/o/r``."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _by_id: dict[int, Registration] = field(default_factory=dict)
    _by_scope_name: dict[tuple[str, str], Registration] = field(default_factory=dict)
    # Per scope, by id; ids only grow, so insertion order is id order (list pages need it).
    _by_scope: dict[str, dict[int, Registration]] = field(default_factory=dict)
    _label_ids: dict[str, int] = field(default_factory=dict)
    _group_sizes: Counter[tuple[str, int]] = field(default_factory=Counter)
    _next_id: int = 1

    def register(
        self,
        scope: str,
        name: str,
        runner_group_id: int,
        labels: Iterable[str],
        max_per_group: int = 0,
    ) -> tuple[Registration, str]:
        """A new ephemeral JIT runner and its encoded config; DuplicateRunner if the name exists,
        RunnerGroupFull if the scope's group already holds ``max_per_group`` (0: no limit)."""
        with self._lock:
            key = (scope, name.lower())
            if key in self._by_scope_name:
                raise DuplicateRunner(name)
            group = (scope, runner_group_id)
            if max_per_group and self._group_sizes[group] >= max_per_group:
                raise RunnerGroupFull(runner_group_id)
            runner = Registration(
                id=self._next_id,
                name=name,
                scope=scope,
                runner_group_id=runner_group_id,
                labels=self._labels(labels),
            )
            self._next_id += 1
            self._by_id[runner.id] = runner
            self._by_scope_name[key] = runner
            self._by_scope.setdefault(scope, {})[runner.id] = runner
            self._group_sizes[group] += 1
        return runner, _encoded_jit_config(runner)

    def _labels(self, names: Iterable[str]) -> list[dict[str, object]]:
        labels: list[dict[str, object]] = []
        seen: set[str] = set()
        for name in (*READ_ONLY_LABELS, *names):
            if name.lower() in seen:
                continue
            seen.add(name.lower())
            label_id = self._label_ids.setdefault(name.lower(), len(self._label_ids) + 1)
            kind = "read-only" if name in READ_ONLY_LABELS else "custom"
            labels.append({"id": label_id, "name": name, "type": kind})
        return labels

    def in_scope(self, scope: str, name: str | None = None) -> list[Registration]:
        """The scope's runners in id order, or the one named ``name``."""
        with self._lock:
            if name is not None:
                runner = self._by_scope_name.get((scope, name.lower()))
                return [runner] if runner else []
            return list(self._by_scope.get(scope, {}).values())

    def get(self, scope: str, runner_id: int) -> Registration:
        with self._lock:
            runner = self._by_id.get(runner_id)
            if runner is None or runner.scope != scope:
                raise UnknownRunner(runner_id)
            return runner

    def delete(self, scope: str, runner_id: int) -> None:
        with self._lock:
            runner = self._by_id.get(runner_id)
            if runner is None or runner.scope != scope:
                raise UnknownRunner(runner_id)
            if runner.busy:
                raise RunnerIsBusy(runner.name)
            self._remove(runner)

    def _remove(self, runner: Registration) -> None:
        del self._by_id[runner.id]
        del self._by_scope_name[(runner.scope, runner.name.lower())]
        del self._by_scope[runner.scope][runner.id]
        self._group_sizes[(runner.scope, runner.runner_group_id)] -= 1

    def all(self) -> list[Registration]:
        with self._lock:
            return list(self._by_id.values())

    def set_state(self, id_or_name: str, state: RunnerState) -> Registration | None:
        """Play the runner: connect, take a job, finish it. None when it was removed."""
        with self._lock:
            runner = self._find(id_or_name)
            if state == "finished":
                # An ephemeral runner deregisters itself once its one job is done.
                self._remove(runner)
                return None
            runner.status = "offline" if state == "offline" else "online"
            runner.busy = state == "busy"
            if runner.status == "online":
                runner.os, runner.version = "linux", RUNNER_VERSION
            return runner

    def _find(self, id_or_name: str) -> Registration:
        if id_or_name.isdigit() and int(id_or_name) in self._by_id:
            return self._by_id[int(id_or_name)]
        matches = [r for (_, name), r in self._by_scope_name.items() if name == id_or_name.lower()]
        if len(matches) != 1:
            raise UnknownRunner(id_or_name)
        return matches[0]

    def clear(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._by_scope_name.clear()
            self._by_scope.clear()
            self._group_sizes.clear()


def _encoded_jit_config(runner: Registration) -> str:
    """Shaped like the runner's JIT config: base64 JSON of the files `config.sh` would write."""
    files = {
        ".runner": {
            "agentId": runner.id,
            "agentName": runner.name,
            "poolId": runner.runner_group_id,
            "ephemeral": True,
            "gitHubUrl": f"https://github.com/{runner.scope.split('/', 1)[1]}",
            "workFolder": "_work",
        },
        ".credentials": {"scheme": "OAuth", "data": {"clientId": secrets.token_hex(16)}},
        ".credentials_rsaparams": {"d": secrets.token_urlsafe(32)},
    }
    encoded = {
        name: base64.b64encode(json.dumps(body).encode()).decode() for name, body in files.items()
    }
    return base64.b64encode(json.dumps(encoded).encode()).decode()
