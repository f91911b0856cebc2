"""Keeping the broker small: drop what finished long ago, then vacuum.

Safe while managers run: only tasks with a result older than the retention
are touched, and only their own ``T{tid}.*`` queues and their events.
"""

from __future__ import annotations

import json
import time
from typing import Any

from weft.broker import Broker
from weft.names import TASK_QUEUE_SUFFIXES, TASKS_LOG, task_queue

TERMINAL = {"completed", "failed", "timeout", "cancelled", "killed", "rejected"}


def tidy(broker: Broker, *, retention: float, dry_run: bool = False) -> dict[str, Any]:
    cutoff = time.time() - retention
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
        if (result and result.get("type") == "result" and result.get("status") in TERMINAL
                and float(result.get("finished_at") or 0) < cutoff):
            finished_before.add(tid)
    old_events = []
    for body, mid in broker.peek_all(TASKS_LOG):
        try:
            event = json.loads(body)
        except ValueError:
            continue
        if event.get("tid") in finished_before:
            old_events.append(mid)
    report = {"tasks_dropped": len(finished_before), "events_dropped": len(old_events)}
    if dry_run:
        return report
    for tid in finished_before:
        for suffix in TASK_QUEUE_SUFFIXES:
            broker.delete_queue(task_queue(tid, suffix))
    for i in range(0, len(old_events), 500):
        broker.delete(TASKS_LOG, old_events[i : i + 500])
    broker.vacuum()
    report["vacuumed"] = True
    return report
