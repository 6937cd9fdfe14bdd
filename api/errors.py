"""One error shape everywhere: {"error": {"code", "message"}} (PROTOCOL.md section 2).

Every refusal (refusals.py) is answered here, by one handler; so are
werkzeug's own HTTP errors, dependency outages (503) and anything unexpected.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

import outages
from refusals import Refusal

log = logging.getLogger(__name__)

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large",
          415: "unsupported_media_type", 422: "unprocessable", 429: "rate_limited",
          500: "internal_error", 503: "unavailable"}


class ApiError(Refusal):
    """A refusal of the HTTP layer (a bad parameter, a missing token, a forbidden role)."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None,
                 details: object = None) -> None:
        super().__init__(status, code, message, details=details, headers=headers)


def error_body(code: str, message: str, details: object = None) -> dict:
    body: dict = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Refusal)
    def _refusal(exc: Refusal):
        return jsonify(exc.body()), exc.status, exc.headers

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = "request body is larger than 1 MiB"
        if status == 429:
            message = f"rate limit exceeded ({exc.description})"
        code = getattr(exc, "sb_code", None) or _CODES.get(status, "http_error")
        response = jsonify(error_body(code, message))
        response.status_code = status
        for key, value in (exc.get_headers() or []):
            if key.lower() not in ("content-type", "content-length"):
                response.headers[key] = value
        return response

    def _outage(exc: Exception):
        name = outages.dependency_down(exc)
        log.warning("%s unavailable: %s", name, exc)
        return (jsonify(error_body("unavailable", outages.outage_message(name))), 503,
                {"Retry-After": str(outages.RETRY_AFTER_SECONDS)})

    for kind in outages.TYPES:
        app.register_error_handler(kind, _outage)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return jsonify(error_body("internal_error", "internal error")), 500
