"""Switchboard's app factory; `python app.py` serves everything in one process.

`create_app()` only wires; nothing here does I/O at import. In production
gunicorn runs `app:create_app()` with gevent workers (Procfile).
"""
if __name__ == "__main__":
    # Patch before anything imports socket or threading (DESIGN.md: gevent all the way).
    from gevent import monkey
    monkey.patch_all()

import logging
import time

from flask import Flask, g, render_template, request
from flask_cors import CORS
from gunicorn.app.base import BaseApplication

import realtime.chat_commands  # noqa: F401  (registers the chat's WebSocket commands)
from api import broadcast as broadcast_api
from api import (channels, chat, chat_pages, dev, inventory, notification_pages, notifications, ops, orders,
                 shop_pages, stats)
from api.edges import MAX_BODY_BYTES, BodyLimit, StrictJSONProvider
from api.errors import register_error_handlers
from api.ids import CONVERTERS
from api.ratelimit import init_rate_limits
from api.shell import init_shell
from broadcast.metrics import HTTP_LATENCY
from demo_data import seed_all
from models import make_engine, make_session_factory, session_scope
from models.migrate import upgrade
from realtime import streams
from realtime.admission import Admission
from realtime.sse import SseEndpoint
from realtime.takeover import Streams
from realtime.websocket import WebSocketEndpoint
from services import Services, start_loops
from settings import Settings
from tasks import start_embedded_worker


def create_app(settings: Settings | None = None, *, background: bool = True,
               **overrides) -> Flask:
    """Build the app. `background=False` skips the loops and the embedded worker (tests)."""
    settings = settings or Settings.from_env(**overrides)
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, SB_SETTINGS=settings, JSON_SORT_KEYS=False)
    app.json = StrictJSONProvider(app)
    services = Services.build(settings)
    services.start_hub()
    app.extensions["switchboard"] = services
    # Outermost first: the body limit, then the streams that take their socket
    # over (never a Flask request; one bound on their setups at once), then Flask.
    admission = Admission(settings.realtime.max_concurrent_setups, settings.realtime.setup_wait_seconds)
    app.wsgi_app = BodyLimit(Streams(app.wsgi_app, {"/ws": WebSocketEndpoint(services, admission),
                                                    "/events": SseEndpoint(services, admission)}))

    app.url_map.converters.update(CONVERTERS)
    register_error_handlers(app)
    CORS(app, resources={r"/api/*": {"origins": list(settings.allowed_origins)}},
         supports_credentials=False, expose_headers=["Retry-After"])
    init_rate_limits(app, settings, services.redis)
    init_shell(app, settings)
    for bp in (ops.bp, streams.bp, broadcast_api.bp, stats.bp, chat.bp, channels.bp, chat_pages.bp,
               notifications.bp, notification_pages.bp, orders.bp, inventory.bp, shop_pages.bp):
        app.register_blueprint(bp)
    if not settings.production:
        app.register_blueprint(dev.bp)

    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response):
        if request.endpoint not in ("realtime.websocket", "realtime.events", "realtime.poll"):
            HTTP_LATENCY.labels(request.method, request.endpoint or "unknown",
                                str(response.status_code)).observe(
                time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    @app.get("/")
    def index():
        """Live events in the browser: the developer's view of topics and frames."""
        return render_template("live.html", section="api")

    if background:
        start_loops(services)
        if settings.embedded:
            start_embedded_worker()
            # Seeded here, in the serving process, so the tasks that seeding
            # queues reach this process's in-memory broker.
            _seed_demo(settings)
    return app


def _seed_demo(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        seed_all(session)
    engine.dispose()


def serve() -> None:
    """Embedded mode: migrate, then gunicorn with one gevent worker in the foreground."""
    settings = Settings.from_env()
    upgrade(settings.database_url)

    class _Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"127.0.0.1:{settings.port}")
            self.cfg.set("worker_class", "api.edges.JsonErrorsWorker")
            self.cfg.set("workers", 1)  # the embedded bus and broker live in this one process
            self.cfg.set("worker_connections", 20000)
            self.cfg.set("timeout", 120)
            self.cfg.set("graceful_timeout", 5)
            self.cfg.set("keepalive", 60)   # as gunicorn.conf.py, which says why

        def load(self):
            return create_app(settings)

    logging.basicConfig(level=logging.INFO)
    print(f"Switchboard on http://127.0.0.1:{settings.port} "
          f"({'embedded' if settings.embedded else 'redis'} mode)", flush=True)
    _Server().run()


if __name__ == "__main__":
    serve()
