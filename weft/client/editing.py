"""``weft task edit``: change a task's priority, env or group while it waits.

Managers only ever see a request whole: the edit first takes it away from
them with one atomic ``move`` (keeping the TID) into a side queue, so a
request a manager claimed first cannot be edited (the edit is refused with
the reason). The broker has no in-place update and a message id is unique
across queues, so the new body is put back under the same id in three
steps, each recoverable: a note holding the new request is written, the old
body is deleted, the new one inserted where it came from; then the note
goes. A crash between them leaves a note (or the request) in the side queue,
and the next edit finishes the job (:func:`recover`), so nothing is lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from weft.broker import Broker
from weft.codec import loads_object
from weft.errors import UsageError
from weft.names import SPAWN_HELD, SPAWN_REQUESTS, TASKS_LOG

# side queue per origin, so an interrupted edit knows where the request goes back
SIDE = {SPAWN_REQUESTS: "weft.spawn.editing", SPAWN_HELD: "weft.spawn.editing.held"}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _apply(request: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    from weft.models.rules import check_fields

    spec = dict(request.get("taskspec") or {})
    if changes.get("priority") is not None:
        spec["priority"] = int(changes["priority"])
    if changes.get("env"):
        spec["env"] = {**(spec.get("env") or {}), **changes["env"]}
    if changes.get("group") is not None:
        if changes["group"] in ("", "default"):
            spec.pop("group", None)
        else:
            spec["group"] = changes["group"]
    problems = check_fields(spec)
    if problems:
        raise UsageError("invalid task spec: " + "; ".join(problems))
    return {**request, "taskspec": spec}


def edit(broker: Broker, tid: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Apply ``changes`` (priority, env, group) to waiting task ``tid``."""
    recover(broker)
    for origin, side in SIDE.items():
        moved = broker.move_one(origin, side, message_id=int(tid))
        if moved is not None:
            break
    else:
        raise UsageError(f"task {tid} is not queued or held (it started, ended or does not "
                         "exist): only a waiting task can be edited")
    old = loads_object(moved[0]) or {}
    try:
        new = _apply(old, changes)
    except UsageError:
        broker.move_one(side, origin, message_id=int(tid))  # unchanged, back in its place
        raise
    note = broker.write(side, _dumps({"edit_of": tid, "request": new}))
    broker.delete(side, [int(tid)])
    broker.insert_atomic([(origin, _dumps(new), int(tid))])
    broker.delete(side, [note])
    spec = new["taskspec"]
    broker.write(TASKS_LOG, _dumps({
        "v": 1, "event": "task_edited", "tid": tid, "status": "held" if origin == SPAWN_HELD
        else "queued", "ts": time.time(), "request_id": new.get("request_id"),
        "priority": spec.get("priority", 0), "group": spec.get("group"),
        "changes": {k: v for k, v in changes.items() if v is not None and k != "env"}
        | ({"env": sorted(changes["env"])} if changes.get("env") else {})}))
    return {"tid": tid, "priority": spec.get("priority", 0), "group": spec.get("group"),
            "env": sorted(spec.get("env") or {})}


def recover(broker: Broker) -> int:
    """Finish edits a crash interrupted; return how many were finished."""
    done = 0
    for origin, side in SIDE.items():
        notes: dict[str, tuple[int, dict[str, Any]]] = {}
        bare: list[int] = []
        for body, mid in broker.peek_all(side):
            rec = loads_object(body) or {}
            if "edit_of" in rec:
                notes[str(rec["edit_of"])] = (mid, rec.get("request") or {})
            else:
                bare.append(mid)
        for mid in bare:  # taken, never rewritten: put it back as it was
            if str(mid) not in notes:
                broker.move_one(side, origin, message_id=mid)
                done += 1
        for tid, (note, request) in notes.items():
            broker.delete(side, [int(tid)])
            if broker.peek_one(origin, message_id=int(tid)) is None:
                broker.insert_atomic([(origin, _dumps(request), int(tid))])
            broker.delete(side, [note])
            done += 1
    return done
