"""What one web push costs the sending worker, by part, on this machine's CPU.

    .venv/bin/python bench/webpush_send_cpu.py [--count 2000]

Sends `--count` pushes through providers/webpush.py's WebPushProvider.send to the
local push service of the tests (tests/support/peers.py, VAPID checked, nothing
decrypted or forwarded) and measures the sending thread's CPU (thread_time), then
the parts alone: the aes128gcm encryption (pywebpush's WebPusher.encode), a VAPID
signature, and the HTTP request to the push service over one kept-alive connection.
The push service runs on threads of this process; its CPU is the process's minus the
sender's. This bounds a blast: N pushes need at least N x (sender + push service) of
CPU whatever the database and the queue cost.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pywebpush import WebPusher  # noqa: E402

from providers.base import Content, Target  # noqa: E402
from providers.webpush import WebPushProvider, generate_keys  # noqa: E402
from settings import Settings  # noqa: E402
from tests.support.peers import WebPushPeer  # noqa: E402


def per_call_us(fn, count: int) -> tuple[float, float]:
    """(this thread's CPU, the whole process's CPU) per call, in µs."""
    t0, p0 = time.thread_time(), time.process_time()
    for i in range(count):
        fn(i)
    return ((time.thread_time() - t0) * 1e6 / count, (time.process_time() - p0) * 1e6 / count)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    args = ap.parse_args()
    private, public = generate_keys()
    peer = WebPushPeer(public, decrypt=False).start()
    provider = WebPushProvider(Settings.of(database_url="sqlite://", vapid_private_key=private,
                                           vapid_public_key=public))
    subs = [peer.subscription(f"u{i}") for i in range(100)]
    targets = [Target("webpush:" + str(i), s["endpoint"], {"keys": s["keys"]}) for i, s in enumerate(subs)]
    content = Content("n1", "u1", "promotion_alert", "Flash sale", "Everything 20% off until midnight",
                      action_url="/sale", data={"campaign": "dec"})
    payload = provider.payload(content)
    for t in targets[:10]:
        provider.send(t, content)                     # warm: connection, token, imports

    n = args.count
    send, send_process = per_call_us(lambda i: provider.send(targets[i % len(targets)], content), n)
    pushers = [WebPusher({"endpoint": t.address, **t.extra}) for t in targets]
    encode, _ = per_call_us(lambda i: pushers[i % len(pushers)].encode(payload, "aes128gcm"), n)
    assert provider._vapid is not None
    claims = {"sub": "mailto:ops@example.com", "aud": peer.url, "exp": int(time.time()) + 3600}
    sign, _ = per_call_us(lambda i: provider._vapid.sign(claims), n)
    body = pushers[0].encode(payload, "aes128gcm")["body"]
    headers = {**provider._authorization(peer.url), "TTL": "60", "Content-Encoding": "aes128gcm"}
    post, post_process = per_call_us(
        lambda i: provider.http.post(targets[i % len(targets)].address, data=body, headers=headers, timeout=10), n)
    peer.stop()
    print(json.dumps({"pushes": n, "cpu_us": {
        "send, sender thread": round(send), "push service, per push": round(send_process - send),
        "encryption (pywebpush encode)": round(encode), "VAPID signature (once per service every 11 hours now)": round(sign),
        "HTTP request (kept alive)": round(post),
        "the rest of send (WebPusher, headers)": round(send - encode - post)}}, indent=1))


if __name__ == "__main__":
    main()
