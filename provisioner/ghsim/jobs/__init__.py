"""Workflow jobs in the simulator: a test enqueues jobs, the simulator plays their life.

A job is queued; an online, idle runner registered for the job's repository (or its
organization or enterprise) that carries every label of the job takes it (in_progress), and
after the job's duration it completes and the ephemeral runner deregisters, as on GitHub.
Each step is sent as a signed ``workflow_job`` webhook to the configured URL, and the runs
and jobs are served as GitHub's REST API lists them, for polling.

Admin: ``POST /_sim/jobs`` enqueues, ``GET /_sim/jobs`` lists, ``POST /_sim/webhooks``
sets the URL, the secret and whether webhooks are sent at all.

``model`` holds the data, ``player`` plays it, ``routes`` serves it and ``admin`` is the
client of the admin endpoints.
"""

from provisioner.ghsim.jobs.admin import JobsAdmin
from provisioner.ghsim.jobs.model import RUNNER_DEFAULT_LABELS, SimJob, WebhookTarget, signature
from provisioner.ghsim.jobs.player import SENDERS, TICK_S, JobBoard
from provisioner.ghsim.jobs.routes import (
    DEFAULT_PER_PAGE,
    DOCS,
    EXTENSION,
    MAX_JOBS_PER_CALL,
    MAX_PER_PAGE,
    RUNS_DOCS,
    board,
    install,
)

__all__ = [
    "DEFAULT_PER_PAGE",
    "DOCS",
    "EXTENSION",
    "MAX_JOBS_PER_CALL",
    "MAX_PER_PAGE",
    "RUNNER_DEFAULT_LABELS",
    "RUNS_DOCS",
    "SENDERS",
    "TICK_S",
    "JobBoard",
    "JobsAdmin",
    "SimJob",
    "WebhookTarget",
    "board",
    "install",
    "signature",
]
