"""The connection layer: `/ws`, `/events` and `/poll`, and the policy around them.

Beside api/, above broadcast/ (the bus, the hub and the transports, which
know nothing of users, rights or the domain):

- `takeover.py`: the streams served beneath Flask, which take their socket over
  (`websocket.py`: `/ws`; `sse.py`: `/events`), and the keep-alive round;
  `streams.py`: `/poll`, and what Flask answers at `/ws` and `/events`
- `admission.py`: the origin, the token, the topics asked for, setups at once
- `topics.py`: who may subscribe to what
- `ops.py`: what a WebSocket client's ops do, and how a refusal is answered
- `commands.py`: the registry of what a client may `emit`; `chat_commands.py` the chat's
- `presence.py`: who is online (counted, capped, announced, reaped); `announcer.py`
  takes announcements off the connection path
"""
