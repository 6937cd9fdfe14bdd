"""The HTTP edge: what is refused before any view runs, and how the refusal looks.

PROTOCOL.md section 2: a body over 1 MiB is 413 on every path, however it is
framed; every error is JSON, including the ones gunicorn answers itself (a
request line or a header too long) before the app sees the request.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from flask.json.provider import DefaultJSONProvider
from gunicorn import util as gunicorn_util
from gunicorn.workers.ggevent import GeventWorker

from broadcast import jsontext

MAX_BODY_BYTES = 1 << 20
# A refused body is read and thrown away up to this much, so that a client
# still sending it gets to read the 413 instead of a connection reset; past
# it the connection is closed under the sender.
_DRAIN_BYTES = 8 << 20


def error_json(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def _answer(start_response: Callable, status: str, code: str, message: str) -> list[bytes]:
    body = error_json(code, message)
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))), ("Connection", "close")])
    return [body]


def _drain(stream: Any, limit: int) -> None:
    left = limit
    try:
        while left > 0:
            chunk = stream.read(min(left, 64 * 1024))
            if not chunk:
                return
            left -= len(chunk)
    except (OSError, ValueError):
        return  # the client went away or broke the framing: nothing left to be polite to


class BodyLimit:
    """WSGI middleware: 413 for a body over `limit` bytes, before the app runs.

    A `Content-Length` is judged at once. A body without one (chunked) is read
    here up to the limit and handed on in memory with its length set, so no
    view can meet a body larger than the limit, whether or not it reads one.
    """

    def __init__(self, app: Callable, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        stream = environ.get("wsgi.input")
        length = environ.get("CONTENT_LENGTH") or ""
        if length:
            try:
                size = int(length)
            except ValueError:
                return _answer(start_response, "400 Bad Request", "invalid_content_length",
                               "Content-Length must be a number of bytes")
            if size > self.limit:
                _drain(stream, min(size, _DRAIN_BYTES))
                return self._refuse(start_response)
        elif stream is not None and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            data = stream.read(self.limit + 1)
            if len(data) > self.limit:
                _drain(stream, _DRAIN_BYTES)
                return self._refuse(start_response)
            environ["wsgi.input"] = io.BytesIO(data)
            environ["CONTENT_LENGTH"] = str(len(data))
        return self.app(environ, start_response)

    def _refuse(self, start_response: Callable) -> list[bytes]:
        return _answer(start_response, "413 Request Entity Too Large", "too_large",
                       f"request bodies are limited to {self.limit} bytes (1 MiB)")


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, parsing as `broadcast.jsontext` does (depth, lone surrogates)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return jsontext.loads(s)


# gunicorn answers a request line or header it will not read with an HTML
# page (414, 431, 400) from `util.write_error`, before the app is called; the
# worker below makes that answer the contract's JSON body instead.
_GUNICORN_CODES = {400: "bad_request", 403: "forbidden", 414: "uri_too_long",
                   417: "expectation_failed", 431: "headers_too_large", 500: "internal_error",
                   501: "not_implemented"}


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    message = {414: "the request line is too long (a token goes in the Authorization header)",
               431: "a request header is too large"}.get(status_int, mesg or reason)
    body = error_json(_GUNICORN_CODES.get(status_int, "http_error"), message)
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


class JsonErrorsWorker(GeventWorker):
    """gunicorn's gevent worker, with its own error pages written as JSON."""

    def init_process(self) -> None:
        gunicorn_util.write_error = write_json_error
        super().init_process()
