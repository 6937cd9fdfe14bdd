"""The expiry loop's bookkeeping: due at `exp`, not before; a refresh moves the deadline."""
from __future__ import annotations

import gc

from broadcast.expiry import Deadlines


class Conn:
    def __init__(self, at: float) -> None:
        self.expires_at = at

    def expire(self) -> None:
        pass


def test_due_at_exp_and_a_refresh_moves_it():
    now = [100.0]
    deadlines = Deadlines(clock=lambda: now[0], loop=False)
    a, b = Conn(105.0), Conn(110.0)
    deadlines.add(a)
    deadlines.add(b)
    assert deadlines.due() == []
    now[0] = 105.0
    assert deadlines.due() == [a]
    b.expires_at = 200.0            # refreshed before its exp
    deadlines.add(b)
    now[0] = 150.0
    assert deadlines.due() == []    # the old entry is dropped
    now[0] = 200.0
    assert deadlines.due() == [b]


def test_a_closed_connection_is_not_kept_alive_by_its_deadline():
    now = [0.0]
    deadlines = Deadlines(clock=lambda: now[0], loop=False)
    conn = Conn(10.0)
    deadlines.add(conn)
    del conn
    gc.collect()
    now[0] = 10.0
    assert deadlines.due() == []
