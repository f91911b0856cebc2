"""What this process's broker operations cost: time per kind, lock retries, refusals.

Every :class:`~weft.broker.broker.Broker` call is timed (one ``perf_counter``
pair and a few list increments, inside the connection lock the call already
holds), by kind of operation: ``write``, ``read`` (peeks, searches, counts),
``claim`` (a read that removes), ``move``, ``settle`` (a transaction that
settles a claim: :meth:`~weft.broker.broker.Broker.commit` with a fence,
so a manager step that settles a task counts once, as ``settle``),
``delete``, ``id``, ``poll`` (the change counter) and ``vacuum``.

Lock waits: SQLite first waits inside its busy handler (``WEFT_BUSY_TIMEOUT``,
5 s by default; that time shows only as operation latency); when it gives up
with "database is locked", simplebroker tries the operation again until the
lock timeout. :func:`watch_lock_retries` counts those tries, and the time
of every operation that met one is added up, on SQLite and on PostgreSQL
(where the backend marks lock and serialization conflicts retryable the same
way).

The counts are per process and start at zero in a forked child. A manager
publishes :func:`snapshot` in its registry record on every heartbeat, so
``weft metrics`` can show every live manager's; its own ``/metrics`` reads
them live. Why not prometheus_client objects: a labelled observation takes a
lock and costs several times this, on the hot path of every task.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from typing import Any

# 50 µs to 30 s: a hot SQLite write is ~0.1 ms, a busy one waits seconds.
BOUNDS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class OpStats:
    """Plain numbers, updated by the thread that holds the broker's connection lock."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.counts: dict[str, list[int]] = {}  # op -> one count per bucket (+Inf last)
        self.seconds: dict[str, float] = {}
        self.lock_retries = 0
        self.lock_wait_seconds = 0.0
        self.oversize = 0

    def observe(self, op: str, seconds: float, retries_before: int) -> None:
        """One operation of kind ``op`` took ``seconds``; it met a lock if
        :attr:`lock_retries` moved past ``retries_before`` meanwhile."""
        if self.lock_retries != retries_before:
            self.lock_wait_seconds += seconds
        counts = self.counts.get(op)
        if counts is None:
            counts = self.counts[op] = [0] * (len(BOUNDS) + 1)
            self.seconds[op] = 0.0
        counts[bisect_left(BOUNDS, seconds)] += 1
        self.seconds[op] += seconds

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy (the registry record's ``broker`` field)."""
        return {"bounds": list(BOUNDS),
                "ops": {op: {"n": list(c), "s": round(self.seconds.get(op, 0.0), 6)}
                        for op, c in list(self.counts.items())},
                "lock_retries": self.lock_retries,
                "lock_wait_s": round(self.lock_wait_seconds, 6),
                "oversize": self.oversize}


STATS = OpStats()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=STATS.reset)


def watch_lock_retries(core: Any) -> None:
    """Count simplebroker's retries of operations that found the database locked.

    simplebroker runs each statement through its core's ``_run_with_retry``;
    after a lock error, and only then, its stop condition asks the core's
    ``_operation_progress_token`` whether anyone else made progress. Counting
    those questions counts the failed tries at no cost to an operation that
    succeeds at once. A simplebroker without that method leaves the count at zero.
    """
    token = getattr(core, "_operation_progress_token", None)
    if token is None:
        return

    def counted() -> object:
        STATS.lock_retries += 1
        return token()

    core._operation_progress_token = counted
