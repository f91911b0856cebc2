"""Task trees: the tasks a task spawned, found by ``parent_tid``, rolled up.

A task submitted from inside another inherits ``WEFT_TASK_TID`` as its
``parent_tid`` (see :mod:`weft.client.specs`), so children are found by
looking for that field in the log and in the spawn queue: a substring
search the broker answers without reading every event.
"""

from __future__ import annotations

from typing import Any

from weft.broker import Broker
from weft.client.queries import task_status
from weft.codec import loads_object
from weft.names import SPAWN_REQUESTS, SPAWN_WAITING, TASKS_LOG

RUNNING = frozenset({"spawning", "running", "paused"})
WAITING = frozenset({"queued", "deferred"})
DONE = frozenset({"completed"})
MAX_DEPTH = 32


def bucket(status: str) -> str:
    """running | queued | done | failed: the four words a roll-up uses."""
    if status in RUNNING:
        return "running"
    if status in WAITING:
        return "queued"
    if status in DONE:
        return "done"
    return "failed"


def children(broker: Broker, tid: str) -> list[str]:
    """TIDs whose ``parent_tid`` is ``tid`` (logged or still queued), oldest first."""
    needle = f'"parent_tid":"{tid}"'
    found: set[str] = set()
    for queue in (TASKS_LOG, SPAWN_REQUESTS, SPAWN_WAITING):
        for raw, mid in broker.find_messages(queue, needle):
            body = loads_object(raw)
            if body is None:
                continue
            if queue == TASKS_LOG:
                if body.get("parent_tid") == tid and body.get("tid"):
                    found.add(str(body["tid"]))
            else:
                spec = body.get("taskspec") or {}
                if spec.get("parent_tid") == tid:
                    found.add(str(spec.get("tid") or str(mid).zfill(19)))
    found.discard(tid)
    return sorted(found)


def tree(broker: Broker, tid: str) -> dict[str, Any]:
    """``{tid, name, status, exit_code, children: [...], rollup: {...}}``.

    ``rollup`` counts every descendant (not the task itself) by bucket.
    """
    return _node(broker, tid, seen={tid}, depth=0)


def _node(broker: Broker, tid: str, *, seen: set[str], depth: int) -> dict[str, Any]:
    info = task_status(broker, tid)
    node: dict[str, Any] = {key: info.get(key) for key in
                            ("tid", "name", "status", "exit_code", "request_id", "parent_tid")}
    # The name `weft task list` shows: the given name, else the target.
    node["name"] = info.get("name") or info.get("target")
    kids = []
    if depth < MAX_DEPTH:
        for child in children(broker, tid):
            if child not in seen:
                seen.add(child)
                kids.append(_node(broker, child, seen=seen, depth=depth + 1))
    rollup = {"running": 0, "queued": 0, "done": 0, "failed": 0}
    for kid in kids:
        rollup[bucket(kid["status"])] += 1
        for key, n in kid["rollup"].items():
            rollup[key] += n
    node["children"] = kids
    node["rollup"] = rollup
    return node


def rollup_text(rollup: dict[str, int]) -> str:
    """``2 running, 3 done, 1 failed`` (zero buckets left out); '' for none."""
    return ", ".join(f"{n} {key}" for key, n in rollup.items() if n)
