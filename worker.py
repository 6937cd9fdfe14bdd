"""The Celery processes' wiring: `celery -A worker worker|beat|flower` (Procfile).

The tasks' app (tasks/) is wired here as app.py wires a web process: the
settings are read from the environment when Celery first needs its
configuration (not at import), and each pool process builds its own parts
after the fork (database pool, bus), which also registers the task sender
and the services the tasks run with (services.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

from celery.signals import worker_process_init

import services
import tasks
from settings import Settings

# `celery -A worker` puts the project on sys.path only while it loads this module
# (and removes its entry afterwards); pool processes import task modules later.
sys.path.append(str(Path(__file__).resolve().parent))

celery_app = tasks.celery_app
# Whatever the pool (prefork children build theirs after the fork, below; a solo,
# threads or gevent pool has no fork), a task finds this process's services.
tasks.use_services(services.get_services)


@celery_app.on_configure.connect
def _configure(sender, **_) -> None:
    tasks.configure(Settings.from_env())


@worker_process_init.connect
def _build_services(**_) -> None:
    services.get_services()
