"""broadcast/script_calls.py on the real Redis: concurrent script calls share a pipeline,
each answered on its own; scripts a restarted Redis forgot are loaded again."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from broadcast.script_calls import ScriptCalls
from tests.unit.test_group_commit import TIMEOUT, queued, wait_until

REDIS_URL = "redis://127.0.0.1:6379/0"
INCR_BY = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
REFUSE = "return redis.error_reply('refused ' .. ARGV[1])"


@pytest.fixture
def client(redis_prefix):
    c = redis.Redis.from_url(REDIS_URL)
    yield c
    c.close()


def test_calls_arriving_while_a_pipeline_is_out_go_in_the_next_one(client, redis_prefix):
    calls = ScriptCalls(client)
    incr = client.register_script(INCR_BY)
    client.script_load(INCR_BY)  # else the first call's NOSCRIPT retry is a round trip too
    sizes, release = [], threading.Event()
    send = calls._pipeline

    def recording(batch):
        sizes.append(len(batch))
        if len(sizes) == 1:
            assert release.wait(TIMEOUT)
        return send(batch)

    calls._pipeline = recording
    key = f"{redis_prefix}n"
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(calls.call, incr, [key], [1])
        wait_until(lambda: sizes)
        rest = [pool.submit(calls.call_many, [(incr, [key], [10]), (incr, [key], [100])])
                for _ in range(5)]
        wait_until(lambda: queued(calls._batches, None) == 5)
        release.set()
        assert first.result(TIMEOUT) == 1
        answers = [f.result(TIMEOUT) for f in rest]
    assert sizes == [1, 10]  # one round trip for the five requests that waited
    # Each request's calls ran in order, one after the other's, never interleaved.
    assert sorted(answers) == [[1 + 110 * i + 10, 1 + 110 * i + 110] for i in range(5)]
    assert int(client.get(key)) == 551


def test_one_calls_error_is_its_own(client, redis_prefix):
    calls = ScriptCalls(client)
    incr, refuse = client.register_script(INCR_BY), client.register_script(REFUSE)
    key = f"{redis_prefix}m"
    with pytest.raises(redis.exceptions.ResponseError, match="refused 7"):
        calls.call_many([(incr, [key], [1]), (refuse, [], [7])])
    assert calls.call(incr, [key], [1]) == 2  # the good call of the failed request ran


def test_scripts_a_restarted_redis_forgot_are_loaded_again(client, redis_prefix):
    calls = ScriptCalls(client)
    incr = client.register_script(INCR_BY)
    key = f"{redis_prefix}k"
    assert calls.call(incr, [key], [5]) == 5
    client.script_flush()
    assert calls.call_many([(incr, [key], [1]), (incr, [key], [1])]) == [6, 7]  # once each
