"""One picture of a project for ``weft status --watch``: managers and their
capacity, running tasks with elapsed time and memory, the queue, recent
failures. Rebuilt from the broker on every call (there is no side
database); memory is read from the task's process tree when it runs on
this host, and left out otherwise.
"""

from __future__ import annotations

import time
from typing import Any

from weft.broker import Broker
from weft.client.paused import elapsed, manager_paused
from weft.client.queries import list_tasks
from weft.names import SPAWN_HELD, SPAWN_REJECTED, SPAWN_REQUESTS
from weft.runtime import registry

FAILED = frozenset({"failed", "timeout", "killed", "cancelled", "rejected"})
RUNNING = frozenset({"spawning", "running", "paused"})


def snapshot(broker: Broker, *, failures: int = 5) -> dict[str, Any]:
    now = time.time()
    managers = []
    for entry in registry.read_all(broker).values():
        rec = entry.record
        if registry.liveness(rec, now) != "active":
            continue
        managers.append({
            "tid": entry.tid, "name": rec.get("name"), "host": rec.get("host"),
            "pid": rec.get("pid"), "paused": manager_paused(broker, entry.tid, rec),
            "capabilities": rec.get("capabilities") or {}, "load": rec.get("load") or {},
            "heartbeat_at": rec.get("heartbeat_at"), "metrics_addr": rec.get("metrics_addr"),
        })
    tasks = list_tasks(broker)
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task["status"]] = counts.get(task["status"], 0) + 1
    running = [_running_row(t, now) for t in tasks if t["status"] in RUNNING]
    failed = [t for t in tasks if t["status"] in FAILED]
    failed.sort(key=lambda t: t.get("updated_at") or 0)
    stats = {name: pending for name, pending, _total in broker.queue_stats()}
    return {
        "at": now, "managers": sorted(managers, key=lambda m: m["tid"]), "running": running,
        "queued_requests": stats.get(SPAWN_REQUESTS, 0),
        "held_requests": stats.get(SPAWN_HELD, 0),
        "dead_letters": stats.get(SPAWN_REJECTED, 0), "tasks": counts,
        "recent_failures": [{k: t.get(k) for k in ("tid", "name", "status", "exit_code",
                                                   "reason", "error", "updated_at",
                                                   "request_id")}
                            for t in failed[-failures:]],
    }


def _running_row(task: dict[str, Any], now: float) -> dict[str, Any]:
    row = {k: task.get(k) for k in ("tid", "name", "status", "pid", "manager_tid", "request_id",
                                    "target", "parent_tid")}
    row["elapsed"] = elapsed(task, now)  # stops while the task is paused
    row["rss_mb"] = None
    if task.get("pid") and task.get("host") in (None, registry.HOST):
        from weft.resources.telemetry import process_tree_usage

        usage = process_tree_usage(int(task["pid"]))
        if usage is not None:
            row["rss_mb"] = round(usage[0], 1)
    return row
