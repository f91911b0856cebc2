"""Keeping the broker small: drop what finished long ago, then vacuum.

Safe while managers run: only tasks with a result older than the retention
are touched (their own ``T{tid}.*`` queues and their events), plus the
registry rows and events of managers that wrote ``stopped`` before it, and
then the blobs that no remaining message refers to.
Nothing queued, claimed or running is ever removed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from weft.broker import Broker
from weft.names import TASK_QUEUE_SUFFIXES, TASKS_LOG, WORKERS_REGISTRY, task_queue

TERMINAL = {"completed", "failed", "timeout", "cancelled", "killed", "rejected"}


def tidy(broker: Broker, *, retention: float, dry_run: bool = False,
         statuses: frozenset[str] | None = None) -> dict[str, Any]:
    """Drop tasks that ended more than ``retention`` seconds ago (only those
    that ended in one of ``statuses``, when given: keep failures to look at)."""
    cutoff = time.time() - retention
    wanted = TERMINAL if statuses is None else TERMINAL & statuses
    finished_before: set[str] = set()
    for queue, _pending, _total in broker.queue_stats():
        if not (queue.startswith("T") and queue.endswith(".outbox")):
            continue
        tid = queue[1:].split(".", 1)[0]
        last = None
        for body, _ in broker.peek_all(queue):
            last = body
        try:
            result = json.loads(last) if last else None
        except ValueError:
            continue
        if (result and result.get("type") == "result" and result.get("status") in wanted
                and float(result.get("finished_at") or 0) < cutoff):
            finished_before.add(tid)
    gone_managers = _stopped_managers(broker, cutoff)
    old_events = []
    for body, mid in broker.peek_all(TASKS_LOG):
        try:
            event = json.loads(body)
        except ValueError:
            continue
        if event.get("tid") in finished_before or (
                event.get("tid") in gone_managers and float(event.get("ts") or 0) < cutoff):
            old_events.append(mid)
    if dry_run:  # nothing is dropped: say what would be
        return {"dry_run": True, "tasks_to_drop": len(finished_before),
                "events_to_drop": len(old_events), "managers_to_drop": len(gone_managers)}
    report: dict[str, Any] = {"tasks_dropped": len(finished_before),
                              "events_dropped": len(old_events),
                              "managers_dropped": len(gone_managers)}
    if gone_managers:
        broker.delete(WORKERS_REGISTRY, sorted(gone_managers.values()))
    for tid in finished_before:
        for suffix in TASK_QUEUE_SUFFIXES:
            broker.delete_queue(task_queue(tid, suffix))
    for i in range(0, len(old_events), 500):
        broker.delete(TASKS_LOG, old_events[i : i + 500])
    report.update(_sweep_blobs(broker, retention))
    broker.vacuum()
    report["vacuumed"] = True
    return report


def _sweep_blobs(broker: Broker, retention: float) -> dict[str, int]:
    """The blobs no message refers to any more (those of the tasks just dropped, and any
    left by a crash). Only blobs older than the retention (at most an hour) go, so one
    whose reference is being written right now stays."""
    from weft.broker.blobs import sweep

    return sweep(broker, older_than=min(retention, 3600.0))


def _stopped_managers(broker: Broker, cutoff: float) -> dict[str, int]:
    """Managers that wrote ``stopped`` before the cutoff: tid -> registry row id."""
    from weft.runtime.registry import read_all

    return {entry.tid: entry.message_id for entry in read_all(broker).values()
            if entry.record.get("status") == "stopped"
            and float(entry.record.get("heartbeat_at") or 0) < cutoff}
