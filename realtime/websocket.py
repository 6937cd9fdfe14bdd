"""`GET /ws`: the WebSocket endpoint, served beneath Flask (realtime/takeover.py).

The origin, the token and the handshake are checked from gunicorn's environ;
the connection joins its user topic while the socket is being taken over,
and the 101 is written by the connection itself. Anything else sent to
`/ws` (a plain GET) goes on to Flask, which refuses it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib

from broadcast.ws import WebSocketConnection
from realtime import ops
from realtime.admission import Admission, caller_of
from realtime.takeover import closer, open_owned
from refusals import Refusal

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> bytes:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest())


# What is answered to a permessage-deflate offer: each message deflated on its own, both
# ways, so an event is compressed once for all its subscribers (broadcast/wsframes.py).
DEFLATE = b"permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def handshake_response(key: str, deflate: bool = False) -> bytes:
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n"
            + (b"Sec-WebSocket-Extensions: " + DEFLATE + b"\r\n" if deflate else b"") + b"\r\n")


def deflate_offered(header: str) -> bool:
    """Whether one of the client's offers is permessage-deflate as we speak it: any, unless
    it limits our window (server_max_window_bits below 15), which a shared frame cannot."""
    for offer in header.split(","):
        name, *params = [p.strip() for p in offer.split(";")]
        if name.lower() != "permessage-deflate":
            continue
        limits = [p.split("=", 1)[1].strip('" ') for p in params
                  if p.lower().startswith("server_max_window_bits") and "=" in p]
        if all(limit == "15" for limit in limits):
            return True
    return False


def _check_key(environ: dict) -> str:
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
        raise Refusal(426, "unsupported_version", "this server speaks WebSocket version 13",
                      headers={"Sec-WebSocket-Version": "13"})
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
    try:
        if len(base64.b64decode(key, validate=True)) == 16:
            return key
    except (binascii.Error, ValueError):
        pass
    raise Refusal(400, "bad_handshake", "Sec-WebSocket-Key must be 16 bytes in base64")


class WebSocketEndpoint:
    def __init__(self, services, admission: Admission) -> None:
        self.services, self.admission = services, admission
        # One of each for every connection, not a closure per connection.
        self._closed = closer(services)
        self._on_text = lambda conn, text: ops.handle(services, conn, text)

    def wants(self, environ: dict) -> bool:
        return environ.get("HTTP_UPGRADE", "").lower() == "websocket"

    def open(self, environ: dict) -> tuple[WebSocketConnection, bytes]:
        services, settings = self.services, self.services.settings
        me = caller_of(environ, services)
        key = _check_key(environ)
        deflate = settings.realtime.ws_compression and \
            deflate_offered(environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS", ""))

        def make(sock) -> WebSocketConnection:
            limits = settings.realtime
            return WebSocketConnection(
                me, sock, outbox_limit=limits.outbox_limit, max_frame_bytes=limits.max_frame_bytes,
                rate=limits.client_rate, burst=limits.client_burst, expires_at=me.exp, deflate=deflate,
                on_text=self._on_text, on_close=self._closed)

        conn = open_owned(services, self.admission, me, environ, make,
                          lambda c: services.hub.join(c, f"user:{me.id}", None, None))
        return conn, handshake_response(key, deflate)
