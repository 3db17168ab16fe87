"""The workers' Celery app: the queue's app with the task modules included. Built by
`provisioner worker` and `provisioner flower` when they start."""

from __future__ import annotations

from celery import Celery

from provisioner.config import Settings
from provisioner.runtime.queue import make_celery

TASK_MODULES = ("workers.tasks",)


def worker_app(settings: Settings) -> Celery:
    app = make_celery(settings, include=TASK_MODULES)
    # The tasks are shared tasks: importing them binds them to this app.
    app.loader.import_default_modules()
    return app
