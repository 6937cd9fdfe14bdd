#!/usr/bin/env bash
# Start PostgreSQL, Redis and RabbitMQ when they are down (the machine starts them; CI may not).
set -u
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.2; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
# RabbitMQ: the task tests run on it too (CELERY_BROKER_URL=amqp://...).
if ! timeout 30 rabbitmqctl -q status >/dev/null 2>&1; then
  rabbitmq-server -detached || true
  timeout 120 rabbitmqctl -q await_startup || true
fi
pg_isready -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 -p 6379 ping && timeout 30 rabbitmqctl -q status >/dev/null && echo rabbitmq ok
