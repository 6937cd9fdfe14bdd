"""Operations: /healthz, /readyz, /metrics, the OpenAPI document and /docs."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.openapi import build_spec, docs_page
from tasks import broker_ok, workers_by_queue
from tasks.metrics import task_counts_text

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: 200 as soon as the process serves."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Readiness: database, Redis and broker; live Celery workers per queue."""
    services = current_app.extensions["switchboard"]
    checks: dict[str, str] = {}
    try:
        with services.session() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"failed: {type(exc).__name__}"
    if services.settings.redis_url:
        try:
            services.bus.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"failed: {type(exc).__name__}"
    checks["broker"] = "ok" if broker_ok() else "failed"
    queues = workers_by_queue()
    failed = sorted(name for name, state in checks.items() if state != "ok")
    body = {"status": "ready" if not failed else "unavailable", "checks": checks,
            "failed": failed, "queues": queues,
            "unconsumed_queues": sorted(q for q, w in queues.items() if not w)}
    return jsonify(body), (503 if failed else 200)


@bp.get("/metrics")
def metrics():
    """Prometheus metrics of this process."""
    return Response(generate_latest() + task_counts_text().encode(), content_type=CONTENT_TYPE_LATEST)


@bp.get("/api/v1/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of every HTTP endpoint."""
    return jsonify(build_spec(current_app))


@bp.get("/docs")
def docs():
    """Human-readable API reference."""
    return Response(docs_page(build_spec(current_app)), mimetype="text/html")
