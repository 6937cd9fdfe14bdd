"""CPU per chat send, in process: the customer's POST /api/v1/conversations/{id}/messages.

Builds the app against a fresh migrated PostgreSQL database and Redis (rate
limits set out of the way), opens N active conversations, then times
`time.process_time()` around each test-client POST.

    .venv/bin/python bench/chat_send_cpu.py [--sends 2000] [--profile out.prof]
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from models import Agent, Conversation, new_id, utcnow  # noqa: E402
from tests.support.databases import fresh_pg_database  # noqa: E402
from tests.support.clients import auth  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--profile", help="write a cProfile of the timed sends here")
    args = parser.parse_args()
    with fresh_pg_database("sb_cpubench") as db:
        app = create_app(background=False, database_url=db, redis_url="redis://127.0.0.1:6379/0",
                         redis_prefix=f"sbcpu{uuid.uuid4().hex[:6]}:",
                         rate_limit_address="10000000/minute", rate_limit_user="10000000/minute")
        services = app.extensions["switchboard"]
        convs = []
        with services.session() as s:
            s.add(Agent(user_id="cpu-agent", name="A", status="online", concurrent_limit=10_000,
                        current_conversations=args.conversations))
            for i in range(args.conversations):
                cid = new_id()
                s.add(Conversation(id=cid, customer_id=f"cpu-cust-{i}", agent_id="cpu-agent",
                                   status="active", priority="medium", tags=[], meta={},
                                   created_at=utcnow(), assigned_at=utcnow()))
                convs.append((cid, auth(f"cpu-cust-{i}", "customer")))
        client = app.test_client()

        def send(k: int) -> float:
            cid, headers = convs[k % len(convs)]
            t = time.process_time()
            r = client.post(f"/api/v1/conversations/{cid}/messages", headers=headers,
                            json={"content": {"text": f"m{k}", "metadata": {"t0": time.time()}}})
            cpu = time.process_time() - t
            assert r.status_code == 201, r.get_data(as_text=True)
            return cpu

        for k in range(min(200, args.sends)):  # warm up: user rows, pools, caches
            send(k)
        prof = None
        if args.profile:
            import cProfile
            prof = cProfile.Profile(time.process_time)
            prof.enable()
        wall = time.perf_counter()
        cpu = [send(k) for k in range(args.sends)]
        wall = time.perf_counter() - wall
        if prof is not None:
            prof.disable()
            prof.dump_stats(args.profile)
        ms = sorted(c * 1000 for c in cpu)
        print(f"customer send, {args.sends} POSTs: CPU per send mean {statistics.mean(ms):.2f} ms, "
              f"median {statistics.median(ms):.2f} ms, p90 {ms[int(0.9 * len(ms))]:.2f} ms; "
              f"wall per send {wall / args.sends * 1000:.2f} ms")


if __name__ == "__main__":
    main()
