"""Hold and release: keeping a queued task from starting until told.

A held request lives in ``weft.spawn.held``, a queue no manager reads, so
holding needs no change to any manager: ``hold`` and ``release`` are each
one atomic ``move`` between ``weft.spawn.requests`` and ``weft.spawn.held``
that keeps the message id (the TID) and so the task's place in FIFO order.
Whichever of a hold and a manager's claim moves the request first wins; the
other finds it gone and says so. An event (``task_held`` /
``task_released``) records each move for the task's timeline; the queue the
request sits in stays the truth (:mod:`weft.client.queries`).
"""

from __future__ import annotations

import time
from typing import Any

from weft.broker import Broker
from weft.errors import UsageError
from weft.names import SPAWN_HELD, SPAWN_REQUESTS, TASKS_LOG
from weft.runtime.batch import dumps


def _event(broker: Broker, name: str, tid: str, status: str, request: dict[str, Any]) -> None:
    spec = request.get("taskspec") or {}
    event = {"v": 1, "event": name, "tid": tid, "status": status, "ts": time.time(),
             "request_id": request.get("request_id") or spec.get("request_id"),
             "name": spec.get("name"), "parent_tid": spec.get("parent_tid")}
    broker.write(TASKS_LOG, dumps({k: v for k, v in event.items() if v is not None}))


def _move(broker: Broker, tid: str, src: str, dst: str) -> dict[str, Any] | None:
    from weft.codec import loads_object

    moved = broker.move_one(src, dst, message_id=int(tid))
    return None if moved is None else (loads_object(moved[0]) or {})


def _shift(broker: Broker, tid: str, src: str, dst: str, *, event: str, status: str) -> bool | None:
    """Move ``tid`` from ``src`` to ``dst`` and record ``event``: True; False when
    it already sits in ``dst``; None when it is in neither."""
    request = _move(broker, tid, src, dst)
    if request is not None:
        _event(broker, event, tid, status, request)
        return True
    return False if broker.peek_one(dst, message_id=int(tid)) is not None else None


def hold(broker: Broker, tid: str) -> str:
    """Hold queued task ``tid``: ``"held"``, or ``"already held"``.

    UsageError when the task is not waiting (a manager claimed it first).
    """
    moved = _shift(broker, tid, SPAWN_REQUESTS, SPAWN_HELD, event="task_held", status="held")
    if moved is None:
        raise UsageError(f"task {tid} is not queued (it started or ended): only a queued task "
                         "can be held")
    return "held" if moved else "already held"


def release(broker: Broker, tid: str) -> str:
    """Release held task ``tid`` back to the queue, in its old place: ``"released"``,
    or ``"not held"`` when it is already queued. UsageError otherwise."""
    moved = _shift(broker, tid, SPAWN_HELD, SPAWN_REQUESTS, event="task_released",
                   status="queued")
    if moved is None:
        raise UsageError(f"task {tid} is not held")
    return "released" if moved else "not held"
