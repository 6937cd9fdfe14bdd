"""Nothing in a request may block the loop: a slow PostgreSQL query lets other greenlets run."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.procs import ROOT


def test_a_slow_query_does_not_stall_other_greenlets(pg_url):
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import gevent, time
        from sqlalchemy import text
        from models import make_engine
        from settings import normalise_database_url
        engine = make_engine(normalise_database_url({pg_url!r}))
        ticks = []
        def ticker():
            while True:
                ticks.append(time.monotonic())
                gevent.sleep(0.05)
        t = gevent.spawn(ticker)
        def slow():
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_sleep(2.0)"))
        start = time.monotonic()
        gevent.spawn(slow).join()
        during = [x for x in ticks if x > start]
        print(len(during))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip().splitlines()[-1]) >= 10  # the ticker ran through the query (40 ticks on a quiet box, 0-1 if it blocked)
