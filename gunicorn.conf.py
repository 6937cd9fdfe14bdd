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
# arrive; under a reconnect storm or 100,000 connects a handshake can queue
# longer than gunicorn's 2 s default (20 s still dropped 32 of 100,000), and one
# dropped comes back as a retry. Node's server waits 60 s for the headers
# (BENCHMARKS.md, issue 11).
keepalive = 60
