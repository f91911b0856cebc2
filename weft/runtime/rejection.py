"""Refusing what no manager of the project could ever run, and waiting for absent ones.

Admission tells a manager that a request exceeds *its* capacity totals. That
alone is no reason to refuse it: another manager on the same broker may be
bigger, or may be down for a reboot. So before refusing, the manager reads
every manager the registry has seen within the history window
(``WEFT_MANAGER_HISTORY_WINDOW``, 24 h by default: a record's
``heartbeat_at`` is when it was last seen) and asks
:func:`weft.resources.project_fit.judge`:

- a live manager could fit it: leave it on the queue for that one;
- only absent managers could: it waits as ``deferred`` with that reason;
- none could: it is rejected, the reason naming the best capacity in the
  project:

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
from weft.resources import Capacity, Request, Thresholds
from weft.resources.project_fit import Seen, Verdict, judge, window_text
from weft.runtime import attempt as attempt_
from weft.runtime import registry
from weft.runtime.batch import Batch

REASON = "insufficient_capacity"
PEERS_TTL = 1.0
DEFAULT_WINDOW = 24 * 3600.0


class ProjectManagers:
    """Every manager seen within ``window`` seconds, re-read at most every ``ttl`` s."""

    def __init__(self, broker: Broker, me: Seen, *, window: float = DEFAULT_WINDOW,
                 ttl: float = PEERS_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.broker = broker
        self.me = me
        self.window = window
        self.ttl = ttl
        self.clock = clock
        self._seen: list[Seen] = []
        self._read_at: float | None = None

    def seen(self, *, fresh: bool = False) -> list[Seen]:
        """This manager and every other one seen within the window."""
        now = self.clock()
        if fresh or self._read_at is None or now - self._read_at >= self.ttl:
            self._seen = [self.me, *seen_managers(self.broker, time.time(), self.window,
                                                  exclude=self.me.tid)]
            self._read_at = now
        return self._seen

    def judge(self, request: Request) -> Verdict:
        """What to do with a request this manager cannot fit. A "wait" or "reject"
        from the cache is checked again against a fresh read before anyone acts on it."""
        verdict = judge(request, self.seen(), self.window)
        if verdict.kind != "live":
            verdict = judge(request, self.seen(fresh=True), self.window)
        return verdict

    @property
    def span(self) -> str:
        return window_text(self.window)


def seen_managers(broker: Broker, now: float, window: float, *,
                  exclude: str | None = None) -> list[Seen]:
    """Managers whose newest record's heartbeat is within ``window`` of ``now``."""
    found = []
    for entry in registry.read_all(broker).values():
        record = entry.record
        if entry.tid == exclude or record.get("role", "manager") != "manager":
            continue
        try:
            last_seen = float(record.get("heartbeat_at") or 0)
        except (TypeError, ValueError):
            continue
        if now - last_seen > window:
            continue
        capacity = _capacity_of(record)
        found.append(Seen(tid=entry.tid, host=str(record.get("host") or "?"),
                          live=registry.liveness(record, now) == "active",
                          capacity=capacity[0] if capacity else None,
                          thresholds=capacity[1] if capacity else Thresholds()))
    return found


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
    error = f"no manager can ever run this task: {reason}"
    ids = {k: v for k, v in (("request_id", request_id), ("name", name),
                             ("parent_tid", parent_tid)) if v is not None}
    # One fenced operation: the move, the result and the event (weft/runtime/attempt.py).
    return attempt_.dead_letter(broker, attempt_.Claim(SPAWN_REQUESTS, message_id), problem=error,
                                manager_tid=manager_tid, reason=REASON, ids=ids,
                                attempt=attempt, details=details)
