"""A socket a connection can own, and its peer, for tests of the transports."""
from __future__ import annotations

import _socket

import gevent
import gevent.socket


def owned_pair():
    """(a bare non-blocking socket, as realtime/takeover.py hands over, its gevent peer)."""
    ours, peer = gevent.socket.socketpair()
    raw = _socket.socket(fileno=ours.detach())
    raw.setblocking(False)
    return raw, peer


def read_to_eof(sock, timeout: float = 5) -> bytes:
    out = b""
    with gevent.Timeout(timeout):
        while True:
            data = sock.recv(65536)
            if not data:
                return out
            out += data
