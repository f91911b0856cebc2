"""Give a dead manager's claimed requests back to the spawn queue.

A manager that dies (SIGKILL, power cut on another host) leaves requests in
``T{mgr}.reserved``. Any live manager returns them to
``weft.spawn.requests`` with an atomic move that keeps the id (so the TID
and FIFO position are kept): at once when the dead manager was on this host
and its PID is provably gone, after its heartbeat lease otherwise. A request
whose task had already started (a launcher reported its process, or its
outbox has output) is not re-run: it is dropped from the claim queue and its
task is left to the launcher that runs it.
"""

from __future__ import annotations

import json
import time

from weft.broker import Broker
from weft.names import SPAWN_REQUESTS, TASKS_LOG, WORKERS_REGISTRY, task_queue
from weft.runtime import registry
from weft.runtime.batch import Batch, dumps


def recover_dead_managers(broker: Broker, batch: Batch, my_tid: str) -> int:
    """Requeue the claims of every dead manager; returns how many moved."""
    now = time.time()
    requeued = 0
    for entry in registry.read_all(broker).values():
        record = entry.record
        if entry.tid == my_tid or registry.liveness(record, now) != "dead":
            continue
        requeued += _requeue_claims(broker, batch, entry.tid)
        stopped = dict(record, status="stopped", stop_reason="dead (recovered by a peer)",
                       heartbeat_at=now)
        broker.write(WORKERS_REGISTRY, dumps(stopped))
        broker.delete(WORKERS_REGISTRY, [entry.message_id])
        batch.event("manager_lost", entry.tid, "stopped", manager_tid=my_tid,
                    reason="dead", details={"requeued": requeued, "pid": record.get("pid"),
                                            "host": record.get("host")})
    return requeued


def _requeue_claims(broker: Broker, batch: Batch, dead_tid: str) -> int:
    reserved = task_queue(dead_tid, "reserved")
    moved = 0
    while (msg := broker.peek_one(reserved)) is not None:
        body, mid = msg
        tid = _tid_of(body, mid)
        if _already_started(broker, tid):
            broker.delete(reserved, [mid])
            continue
        # A half-written hand-off: drop the work item, the next claim writes it again.
        broker.delete_queue(task_queue(tid, "inbox"))
        broker.delete_queue(task_queue(tid, "reserved"))
        if broker.move_one(reserved, SPAWN_REQUESTS, message_id=mid) is not None:
            moved += 1
            batch.event("task_requeued", tid, "queued", reason="manager_lost",
                        details={"from_manager": dead_tid}, **_ids_of(body))
    return moved


def _tid_of(body: str, mid: int) -> str:
    try:
        tid = json.loads(body)["taskspec"].get("tid")
    except (ValueError, KeyError, TypeError, AttributeError):
        tid = None
    return tid or str(mid).zfill(19)


def _ids_of(body: str) -> dict[str, str]:
    """Request id and parent of a requeued request, so its events stay correlated."""
    try:
        raw = json.loads(body)
        spec = raw.get("taskspec") or {}
        ids = {"request_id": raw.get("request_id") or spec.get("request_id"),
               "parent_tid": spec.get("parent_tid"), "name": spec.get("name")}
    except (ValueError, AttributeError):
        return {}
    return {k: v for k, v in ids.items() if isinstance(v, str)}


def _already_started(broker: Broker, tid: str) -> bool:
    """Did a launcher report this task's process? (Then re-running it would run it twice.)"""
    if broker.peek_one(task_queue(tid, "outbox")) is not None:
        return True
    return bool(broker.find_ids(TASKS_LOG, f'"event":"task_started","tid":"{tid}"', limit=1))
