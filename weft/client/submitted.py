"""The submit record: each spawn request is queued together with a
``task_submitted`` event that holds the task's spec.

Why: once a manager claims a request, the request is gone (claimed, run,
deleted), and nothing else keeps what the task was asked to do. An operator
who wants to see a failed task's command, or run it again (``weft task
restart``), needs it; so does ``weft task list`` to show labels and groups
of running tasks. The request and its event are inserted in one
transaction, so neither is ever seen without the other, and the event's id
is drawn after the request's, so it sorts after it and before anything a
manager writes about the task.

The event's status is where the request went: ``held``
(``weft.spawn.held``), else ``queued`` (``weft.spawn.requests``, or
``weft.spawn.waiting`` for a task with dependencies).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from weft.broker import Broker
from weft.codec import loads_object
from weft.names import SPAWN_HELD, SPAWN_REQUESTS, SPAWN_WAITING, TASKS_LOG

SUBMITTED = "task_submitted"
# Events written while a task waits (before any manager claimed it).
WAITING_EVENTS = frozenset({SUBMITTED, "task_held", "task_released", "task_edited"})


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def target_text(spec: Mapping[str, Any]) -> str:
    """What the task runs, as one line: the command, or ``fn(args)``."""
    if spec.get("command") is not None:
        return " ".join(str(p) for p in spec["command"])[:200]
    args = ", ".join(json.dumps(a) for a in spec.get("args") or ())[:120]
    return f"{spec.get('function')}({args})"


def queue_request(broker: Broker, request: Mapping[str, Any], *, queue: str = SPAWN_REQUESTS,
                  extra: Mapping[str, Any] | None = None) -> str:
    """Put ``request`` on ``queue`` (the spawn queue, the held queue, or the
    queue of tasks waiting for dependencies) with its submit event; return the TID.

    Both ids are drawn inside the one transaction that inserts both rows
    (:meth:`Broker.insert_drawn`): one commit, and the event sorts right after
    its request, before anything a manager writes about the task.
    """
    body = _dumps(request)
    event = record_fields(request, queue=queue, extra=extra)
    rows = broker.insert_drawn(2, lambda ids: [(queue, body, ids[0]),
                                               (TASKS_LOG, record_body(ids[0], event), ids[1])])
    return str(rows[0][2])


def record_fields(request: Mapping[str, Any], *, queue: str,
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the submit record of ``request`` says, but its TID (see :func:`record_body`)."""
    spec = dict(request.get("taskspec") or {})
    event: dict[str, Any] = {
        "status": "held" if queue == SPAWN_HELD else "queued",
        "ts": time.time(), "request_id": request.get("request_id") or spec.get("request_id"),
        "parent_tid": spec.get("parent_tid"), "name": spec.get("name"),
        "labels": spec.get("labels") or {}, "group": spec.get("group"),
        "priority": spec.get("priority", 0), "target": target_text(spec), "spec": spec,
        "not_before": request.get("not_before"), **(extra or {}),
    }
    return {k: v for k, v in event.items() if v is not None}


def record_body(tid: int, fields: Mapping[str, Any]) -> str:
    """The submit record of task ``tid``, as written to ``weft.tasks.log``."""
    # "event" then "tid" first: submit_event finds the record by that text
    return _dumps({"v": 1, "event": SUBMITTED, "tid": str(tid), **fields})


def submit_event(broker: Broker, tid: str) -> dict[str, Any] | None:
    """The task's ``task_submitted`` event, if one was recorded (and not tidied)."""
    for body, _mid in broker.find_messages(TASKS_LOG, f'"event":"{SUBMITTED}","tid":"{tid}"'):
        event = loads_object(body)
        if event is not None and event.get("tid") == tid:
            return event
    return None


def waiting_request(broker: Broker, tid: str) -> tuple[str, dict[str, Any]] | None:
    """(queue, request) of a task still queued or held, else None."""
    if not tid.isdigit():
        return None
    for queue in (SPAWN_REQUESTS, SPAWN_HELD, SPAWN_WAITING):
        msg = broker.peek_one(queue, message_id=int(tid))
        if msg is not None:
            return queue, loads_object(msg[0]) or {}
    return None
