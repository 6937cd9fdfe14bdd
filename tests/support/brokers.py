"""Celery's two brokers for the task tests: Redis (the default) and RabbitMQ
(`CELERY_BROKER_URL=amqp://…`), each RabbitMQ test in a vhost of its own so that nothing
left in a queue reaches another test. What the tests ask of a broker (how many messages
wait, which ETA tasks a worker holds) is asked through Celery and kombu, the same for both."""
from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from amqp.exceptions import ChannelError
from celery import Celery

import celeryconfig
from settings import Settings

BROKERS = ("redis", "rabbitmq")
AMQP = "amqp://guest:guest@127.0.0.1:5672"


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A vhost of this test's own on the machine's RabbitMQ; its broker URL."""
    name = f"sbt-{uuid.uuid4().hex[:10]}"
    _ctl("add_vhost", name)
    try:
        _ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"{AMQP}/{name}"
    finally:
        _ctl("delete_vhost", name)


def celery_for(env: Mapping[str, str]) -> Celery:
    """A Celery client configured as the processes started with `env` are: it sends to their
    queues and asks their workers, whichever the broker."""
    app = Celery("switchboard-tests")
    app.conf.update(celeryconfig.config(Settings.from_env(dict(env))))
    return app


def queue_length(app: Celery, queue: str) -> int:
    """Messages waiting in `queue` (taken but unacknowledged ones not counted)."""
    with app.connection_for_write() as conn:
        try:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
        except ChannelError as exc:
            if str(exc.reply_code) == "404":   # Redis keeps no key for an empty queue
                return 0
            raise


def scheduled_task_names(app: Celery) -> list[str]:
    """The ETA tasks the workers hold in memory, waiting for their time."""
    replies = app.control.inspect(timeout=1.0).scheduled() or {}
    return [entry["request"]["name"] for entries in replies.values() for entry in entries]
