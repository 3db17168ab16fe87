"""Plays workflow jobs: queued jobs go to idle matching runners, finish after their duration,
and every step goes out as a signed ``workflow_job`` webhook."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
import uuid

import httpx

from provisioner.ghsim.jobs.model import (
    SimJob,
    WebhookTarget,
    can_run,
    repository_payload,
    signature,
)
from provisioner.ghsim.registry import RunnerRegistry, UnknownRunner

TICK_S = 0.02
SENDERS = 4  # webhook sender threads; one job's events always go through the same one


class JobBoard:
    """Jobs and runs of every repository, and the threads that play them and send webhooks."""

    def __init__(self, registry: RunnerRegistry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._jobs: dict[int, SimJob] = {}
        self._runs: dict[int, list[int]] = {}
        self._next_job = 1001
        self._next_run = 501
        self.webhook = WebhookTarget()
        self.sent: dict[str, int] = {"delivered": 0, "failed": 0, "suppressed": 0}
        self._player: threading.Thread | None = None
        self._outboxes: list[queue.Queue[tuple[int, bytes] | None]] = []
        self._senders: list[threading.Thread] = []
        self._generation = 0  # bumped by reset, so queued sends from before it are dropped

    # Jobs.

    def enqueue(
        self, repository: str, labels: list[str], count: int, duration_s: float
    ) -> tuple[int, list[SimJob]]:
        now = time.time()
        with self._lock:
            run_id = self._next_run
            self._next_run += 1
            jobs = []
            for _ in range(count):
                job = SimJob(self._next_job, run_id, repository, labels, duration_s, now)
                self._next_job += 1
                self._jobs[job.id] = job
                jobs.append(job)
            self._runs[run_id] = [job.id for job in jobs]
            for job in jobs:
                self._send(job)
            self._ensure_player()
        return run_id, jobs

    def jobs(self) -> list[SimJob]:
        with self._lock:
            return list(self._jobs.values())

    def run_status(self, run_id: int) -> str:
        statuses = {self._jobs[job_id].status for job_id in self._runs[run_id]}
        if statuses == {"completed"}:
            return "completed"
        if statuses == {"queued"}:
            return "queued"
        return "in_progress"

    def runs_of(self, repository: str) -> list[tuple[int, str]]:
        """(run id, status) of ``repository``'s runs, newest first."""
        with self._lock:
            return [
                (run_id, self.run_status(run_id))
                for run_id in sorted(self._runs, reverse=True)
                if self._jobs[self._runs[run_id][0]].repository.lower() == repository.lower()
            ]

    def jobs_of_run(self, repository: str, run_id: int) -> list[SimJob] | None:
        with self._lock:
            ids = self._runs.get(run_id)
            if not ids or self._jobs[ids[0]].repository.lower() != repository.lower():
                return None
            return [self._jobs[job_id] for job_id in ids]

    def set_webhook(self, target: WebhookTarget) -> None:
        with self._lock:
            self.webhook = target

    def reset(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._runs.clear()
            self.webhook = WebhookTarget()
            self.sent = {"delivered": 0, "failed": 0, "suppressed": 0}
            self._generation += 1

    # Playing the jobs.

    def _ensure_player(self) -> None:
        if self._player is None or not self._player.is_alive():
            self._player = threading.Thread(target=self._play, name="ghsim-jobs", daemon=True)
            self._player.start()

    def _play(self) -> None:
        while True:
            with self._lock:
                if all(job.status == "completed" for job in self._jobs.values()):
                    self._player = None
                    return
            self.tick(time.time())
            time.sleep(TICK_S)

    def tick(self, now: float) -> None:
        """Finish jobs whose time is up, then give queued jobs to idle matching runners."""
        with self._lock:
            for job in self._jobs.values():
                if job.status == "in_progress" and now >= (job.started_at or now) + job.duration_s:
                    self._complete(job, now)
            queued = [job for job in self._jobs.values() if job.status == "queued"]
            if not queued:
                return
            busy = {job.runner_id for job in self._jobs.values() if job.status == "in_progress"}
            idle = [
                runner
                for runner in self.registry.all()
                if runner.status == "online" and not runner.busy and runner.id not in busy
            ]
            for job in sorted(queued, key=lambda j: j.id):
                runner = next((r for r in idle if can_run(r, job)), None)
                if runner is None:
                    continue
                idle.remove(runner)
                try:
                    self.registry.set_state(str(runner.id), "busy")
                except UnknownRunner:
                    continue
                job.status, job.started_at = "in_progress", now
                job.runner_id, job.runner_name = runner.id, runner.name
                self._send(job)

    def _complete(self, job: SimJob, now: float) -> None:
        job.status, job.completed_at = "completed", now
        if job.runner_id is not None:
            # The ephemeral runner deregisters itself once its one job is done.
            with contextlib.suppress(UnknownRunner):
                self.registry.set_state(str(job.runner_id), "finished")
        self._send(job)

    # Webhooks.

    def _send(self, job: SimJob) -> None:
        """Queue the job's current state as a webhook (called with the lock held)."""
        target = self.webhook
        if target.url is None or not target.enabled:
            self.sent["suppressed"] += 1
            return
        payload = {
            "action": job.status,
            "workflow_job": job.to_github(),
            "repository": repository_payload(job.repository),
            "sender": {"login": "ghsim", "type": "Bot"},
        }
        if not self._senders:
            for index in range(SENDERS):
                outbox: queue.Queue[tuple[int, bytes] | None] = queue.Queue()
                sender = threading.Thread(
                    target=self._deliver, args=(outbox,), name=f"ghsim-webhook-{index}", daemon=True
                )
                sender.start()
                self._outboxes.append(outbox)
                self._senders.append(sender)
        self._outboxes[job.id % SENDERS].put((self._generation, json.dumps(payload).encode()))

    def _deliver(self, outbox: queue.Queue[tuple[int, bytes] | None]) -> None:
        with httpx.Client(timeout=10.0) as http:
            while True:
                item = outbox.get()
                if item is None:
                    return
                generation, body = item
                with self._lock:
                    target = self.webhook
                    current = generation == self._generation
                if not current or target.url is None:
                    continue
                headers = {
                    "content-type": "application/json",
                    "user-agent": "GitHub-Hookshot/ghsim",
                    "x-github-event": "workflow_job",
                    "x-github-delivery": str(uuid.uuid4()),
                    "x-github-hook-id": "1",
                }
                if target.secret:
                    headers["x-hub-signature-256"] = signature(target.secret, body)
                try:
                    response = http.post(target.url, content=body, headers=headers)
                    delivered = response.status_code < 300
                except httpx.HTTPError:
                    delivered = False
                with self._lock:
                    self.sent["delivered" if delivered else "failed"] += 1
