"""permessage-deflate on the real event shapes: bytes on the wire with and without, the
CPU of deflating an event (once, for all its subscribers) and of inflating a client's op,
and the memory a connection keeps for it.

    .venv/bin/python bench/ws_compression.py
"""
from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broadcast.events import Event  # noqa: E402
from broadcast.wsframes import FrameDecoder  # noqa: E402
from wsproto.extensions import PerMessageDeflate  # noqa: E402
from wsproto.frame_protocol import FrameProtocol  # noqa: E402

from realtime.websocket import DEFLATE  # noqa: E402

MESSAGE = {"id": "01JDZ6Q3W4X5Y6Z7A8B9C0D1E2", "conversation_id": "01JDZ6PZ1Y2X3W4V5U6T7S8R9Q",
           "client_id": "c-8f2a", "sender_id": "demo-customer", "sender_type": "customer",
           "content": {"text": "Hi! Has my order demo-1001 shipped yet? I'd also like the cap in my basket.",
                       "attachments": [], "metadata": {}},
           "message_type": "text", "status": "sent", "created_at": "2026-12-03T23:19:48.123456Z",
           "updated_at": "2026-12-03T23:19:48.123456Z"}
SHAPES = {
    "message:receive": ("conversation:01JDZ6PZ1Y2X3W4V5U6T7S8R9Q", MESSAGE),
    "inventory_update": ("product:demo-tee", {"product_id": "demo-tee", "variant_id": None, "location": "default",
                                              "available_quantity": 23, "is_in_stock": True, "change_type": "sale",
                                              "timestamp": "2026-12-03T23:19:48.123456+00:00"}),
    "order_status_update": ("order:demo-1001", {"order_id": "demo-1001", "customer_id": "demo-customer",
                                                "previous_status": "processing", "current_status": "shipped",
                                                "timestamp": "2026-12-03T23:19:48.123456+00:00",
                                                "location": {"address": "Bangkok sorting centre"},
                                                "tracking_number": "SIM-1001", "estimated_delivery": None}),
    "notification": ("user:demo-customer", {"id": "01JDZ6Q3W4X5Y6Z7A8B9C0D1E9", "type": "order_status_update",
                                            "title": "Order demo-1001: shipped",
                                            "body": "Your order demo-1001 is now shipped.",
                                            "action_url": "/shop/orders/demo-1001", "icon_url": None,
                                            "data": {"order_id": "demo-1001", "current_status": "shipped"},
                                            "created_at": "2026-12-03T23:19:48.123456Z", "read_at": None}),
    "user:typing": ("conversation:01JDZ6PZ1Y2X3W4V5U6T7S8R9Q",
                    {"conversation_id": "01JDZ6PZ1Y2X3W4V5U6T7S8R9Q", "user_id": "agent-ann"}),
}
N = 20000


def main() -> None:
    print("| event | bytes plain | bytes deflated | ratio | µs to deflate (once per event) |")
    print("| --- | --- | --- | --- | --- |")
    for name, (topic, data) in SHAPES.items():
        sample = Event.build(topic, name, "1764800000000-0:ab12cd34", 1764800000000, data)
        started = time.process_time()
        for _ in range(N):
            assert Event(topic, name, sample.id, sample.frame).ws_deflated
        cost = (time.process_time() - started) / N * 1e6
        plain, packed = len(sample.ws_bytes), len(sample.ws_deflated)
        print(f"| `{name}` | {plain} | {packed} | {packed / plain:.2f} | {cost:.1f} |")
    ext = PerMessageDeflate(client_no_context_takeover=True, server_no_context_takeover=True)
    ext.finalize(DEFLATE.decode())
    op = FrameProtocol(client=True, extensions=[ext]).send_data(
        '{"op": "emit", "event": "message:send", "ref": "r7", "data": {"conversation_id": '
        '"01JDZ6PZ1Y2X3W4V5U6T7S8R9Q", "client_id": "c-8f2a", "content": {"text": "Is it shipped?"}}}', fin=True)
    for deflate, frame in ((False, FrameProtocol(client=True, extensions=[]).send_data(
            '{"op": "emit", "event": "message:send", "ref": "r7", "data": {"conversation_id": '
            '"01JDZ6PZ1Y2X3W4V5U6T7S8R9Q", "client_id": "c-8f2a", "content": {"text": "Is it shipped?"}}}',
            fin=True)), (True, op)):
        decoder = FrameDecoder(64 * 1024, deflate=deflate)
        started = time.process_time()
        for _ in range(N):
            decoder.feed(frame)
        print(f"client op, {'deflated' if deflate else 'plain'}: {len(frame)} bytes, "
              f"{(time.process_time() - started) / N * 1e6:.1f} µs to decode")
    for deflate in (False, True):
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        decoders = [FrameDecoder(64 * 1024, deflate=deflate) for _ in range(10000)]
        after = tracemalloc.take_snapshot()
        size = sum(s.size_diff for s in after.compare_to(before, "filename"))
        tracemalloc.stop()
        print(f"decoder per connection, deflate={deflate}: {size / len(decoders):.0f} bytes")


if __name__ == "__main__":
    main()
