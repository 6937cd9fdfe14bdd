"""gunicorn settings for the `web` process (Procfile): gevent workers, many sockets each."""
import os

bind = f"127.0.0.1:{os.environ.get('PORT', '5000')}" if os.environ.get("SB_BIND_LOCAL") else \
    f"0.0.0.0:{os.environ.get('PORT', '5000')}"
worker_class = "api.edges.JsonErrorsWorker"  # gevent, with JSON error pages
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_connections = 20000   # long-lived WebSocket/SSE connections, not requests
timeout = 120
graceful_timeout = 10
# gunicorn gives each request, the first on a connection included, this long to
# arrive; under a reconnect storm a handshake can queue longer than gunicorn's
# 2 s default or our old 5 s, and one dropped then came back as a retry
# (BENCHMARKS.md, issue 11).
keepalive = 20
