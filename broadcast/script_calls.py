"""Redis script calls of concurrent requests sent together, one pipeline per batch.

Under gevent a blocking round trip costs far more CPU than the script it
runs (BENCHMARKS.md: a Redis PING is ~0.2 ms of CPU under gevent here), and
every API request makes one for its rate limit and most make one or more to
publish. So the calls that arrive while a pipeline is out go together in the
next one (`group_commit.py`): a lone call still goes at once, a busy process
pays one round trip for many requests. Each call is still its own EVALSHA,
answered on its own: one call's error is that call's, not the batch's.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script

from group_commit import GroupCommit

Call = tuple[Script, Sequence[Any], Sequence[Any]]   # (script, keys, args)


class ScriptCalls:
    def __init__(self, client: redis.Redis, name: str = "redis-scripts") -> None:
        self.client = client
        self._batches: GroupCommit[list[Call], list[Any]] = GroupCommit(self._send, name=name)

    def call(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return self.call_many([(script, keys, args)])[0]

    def call_many(self, calls: list[Call]) -> list[Any]:
        """Each call's result, in order; raises the first call's error, if any failed."""
        results = self._batches.submit(None, calls)
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    def _send(self, _key: object, requests: list[list[Call]]) -> list[list[Any]]:
        calls = [c for request in requests for c in request]
        results = self._pipeline(calls)
        # A restarted Redis has forgotten the scripts: load them, run those calls again.
        missing = [i for i, r in enumerate(results) if isinstance(r, redis.exceptions.NoScriptError)]
        if missing:
            for script in {calls[i][0] for i in missing}:
                self.client.script_load(script.script)
            for i, r in zip(missing, self._pipeline([calls[i] for i in missing])):
                results[i] = r
        answers, at = [], 0
        for request in requests:
            answers.append(results[at:at + len(request)])
            at += len(request)
        return answers

    def _pipeline(self, calls: list[Call]) -> list[Any]:
        # EVALSHA by hand: a pipeline of Script calls first asks SCRIPT EXISTS,
        # a round trip of its own, every time.
        with self.client.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            return pipe.execute(raise_on_error=False)
