"""Refusing what no live manager could ever run.

Admission tells a manager that a request exceeds *its* capacity totals. That
alone is no reason to refuse it: another manager on the same broker may be
bigger. So before refusing, the manager compares the request with the
capacity every other live manager publishes in its registry record
(``capabilities``). Only when none of them could ever fit it is the request
rejected:

1. the request is moved atomically from ``weft.spawn.requests`` to
   ``weft.spawn.rejected`` (keeping its id, so the TID still names it). A
   move has exactly one winner, so when several managers reach the same
   conclusion only one of them writes the rest;
2. a result with status ``rejected`` and the reason goes to
   ``T{tid}.outbox``, which releases whoever waits on the task (``weft run``
   prints the reason and exits 2);
3. a ``task_rejected`` event is logged.

A record that cannot be read as a capacity (another weft version, a manager
still starting) counts as "might fit": refusing work wrongly is worse than
letting it wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from weft.broker import Broker
from weft.names import SPAWN_REQUESTS
from weft.resources import Capacity, Request, Thresholds, rejection_reason
from weft.runtime import attempt as attempt_
from weft.runtime import registry
from weft.runtime.batch import Batch

REASON = "insufficient_capacity"
PEERS_TTL = 1.0


class PeerCapacities:
    """The other live managers' capacities, re-read at most every ``ttl`` s."""

    def __init__(self, broker: Broker, my_tid: str, *, ttl: float = PEERS_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.broker = broker
        self.my_tid = my_tid
        self.ttl = ttl
        self.clock = clock
        self._peers: list[tuple[Capacity, Thresholds] | None] = []
        self._read_at: float | None = None

    def peers(self, *, fresh: bool = False) -> list[tuple[Capacity, Thresholds] | None]:
        """One entry per other live manager; None where its capacity is unknown."""
        now = self.clock()
        if fresh or self._read_at is None or now - self._read_at >= self.ttl:
            records = registry.live_managers(self.broker, time.time())
            self._peers = [_capacity_of(r) for r in records if r.get("tid") != self.my_tid]
            self._read_at = now
        return self._peers

    def fits_somewhere(self, request: Request) -> bool:
        """Could some other live manager ever run it? A "no" from the cache is
        checked again against a fresh read before anyone acts on it."""
        return any(self._could_fit(request, fresh) for fresh in (False, True))

    def _could_fit(self, request: Request, fresh: bool) -> bool:
        return any(peer is None or rejection_reason(request, *peer) is None
                   for peer in self.peers(fresh=fresh))


def _capacity_of(record: dict[str, Any]) -> tuple[Capacity, Thresholds] | None:
    caps = record.get("capabilities")
    if not isinstance(caps, dict):
        return None
    try:
        capacity = Capacity.from_record(caps)
        headroom = int(caps.get("vram_headroom_mb", Thresholds().vram_headroom_mb))
    except (KeyError, TypeError, ValueError):
        return None
    return capacity, Thresholds(vram_headroom_mb=headroom)


def reject(broker: Broker, batch: Batch, *, manager_tid: str, message_id: int, tid: str,
           reason: str, attempt: int = 1, request_id: str | None = None,
           name: str | None = None, parent_tid: str | None = None,
           details: dict[str, Any] | None = None) -> bool:
    """Move the request to ``weft.spawn.rejected`` and tell its waiters why.

    Returns False when the request was gone already (another manager claimed
    or rejected it first); then nothing is written.
    """
    error = f"no live manager can ever run this task: {reason}"
    ids = {k: v for k, v in (("request_id", request_id), ("name", name),
                             ("parent_tid", parent_tid)) if v is not None}
    # One fenced operation: the move, the result and the event (weft/runtime/attempt.py).
    return attempt_.dead_letter(broker, attempt_.Claim(SPAWN_REQUESTS, message_id), problem=error,
                                manager_tid=manager_tid, reason=REASON, ids=ids,
                                attempt=attempt, details=details)
