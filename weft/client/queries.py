"""Rebuilding task state from queues and events: there is no side database.

A task's state is the status of its newest event, overridden by a result on
its outbox (terminal); a request still on ``weft.spawn.requests`` with no
events is ``queued``.
"""

from __future__ import annotations

from typing import Any

from weft.broker import Broker
from weft.client.paused import pause_clock
from weft.client.submitted import WAITING_EVENTS, target_text, waiting_request
from weft.codec import loads_object
from weft.errors import AmbiguousTid, NotFound, UsageError
from weft.names import (
    SPAWN_HELD,
    SPAWN_REJECTED,
    SPAWN_REQUESTS,
    SPAWN_WAITING,
    TASKS_LOG,
    WORKERS_REGISTRY,
    task_queue,
)
from weft.runtime.registry import read_all

_load = loads_object
# What a row of a task shows, taken from its events (the submit record first).
SHOWN_KEYS = ("name", "request_id", "parent_tid", "manager_tid", "attempt", "target",
              "labels", "group", "priority", "restarted_from", "host")


def all_events(broker: Broker) -> list[dict[str, Any]]:
    events = []
    for body, mid in broker.peek_all(TASKS_LOG):
        event = _load(body)
        if event is not None:
            event["_id"] = mid
            events.append(event)
    return events


def task_events(broker: Broker, tid: str) -> list[dict[str, Any]]:
    events = []
    for body, _mid in broker.find_messages(TASKS_LOG, f'"tid":"{tid}"'):
        event = loads_object(body)
        if event is not None and event.get("tid") == tid:
            events.append(event)
    return events


def queued_request(broker: Broker, tid: str) -> dict[str, Any] | None:
    """The spawn request of a task still waiting to be claimed (queued, held, or
    waiting for its dependencies), with ``"_queue"`` naming where it waits."""
    found = waiting_request(broker, tid)
    if found is None:
        return None
    queue, request = found
    return {**request, "_queue": queue}


def _waiting_only(events: list[dict[str, Any]]) -> bool:
    return all(e.get("event") in WAITING_EVENTS for e in events)


def waiting_reason(request: dict[str, Any] | None) -> str | None:
    """``waiting for TID, ...`` while a request waits for its dependencies."""
    spec = (request or {}).get("taskspec") or {}
    after = spec.get("after") or []
    return f"waiting for {', '.join(after)}" if after else None


def final_result(broker: Broker, tid: str) -> dict[str, Any] | None:
    queue = task_queue(tid, "outbox")
    last = None
    for body, _ in broker.peek_all(queue):
        last = body
    message = _load(last) if last else None
    return message if message and message.get("type") == "result" else None


def claiming_manager(broker: Broker, tid: str) -> tuple[str, dict[str, Any]] | None:
    """(manager tid, request) when a manager has claimed the task's request but
    not yet written its first event (the claim sits in ``T{mgr}.reserved``)."""
    if not tid.isdigit():
        return None
    for entry in read_all(broker).values():
        msg = broker.peek_one(task_queue(entry.tid, "reserved"), message_id=int(tid))
        if msg is not None:
            return entry.tid, _load(msg[0]) or {}
    return None


def task_status(broker: Broker, tid: str) -> dict[str, Any]:
    request = queued_request(broker, tid)
    events = task_events(broker, tid)
    result = final_result(broker, tid)
    claim = None
    if request is None and _waiting_only(events) and result is None:
        # Between the claim (spawn queue -> T{mgr}.reserved) and the first event
        # the task is only in its manager's claim queue; the claim is deleted
        # only after events exist, so looking there and then at the events
        # again cannot miss a task that is moving on while we look.
        claim = claiming_manager(broker, tid)
        if claim is None:
            events = task_events(broker, tid)
            request = queued_request(broker, tid) if _waiting_only(events) else None
            if not events and request is None:
                raise NotFound(f"no task {tid}")
    state = "queued"
    info: dict[str, Any] = {"tid": tid}
    if claim is not None:
        state = "spawning"
        info["manager_tid"] = claim[0]
        request = claim[1]
    for event in events:
        state = event.get("status", state)
        for key in SHOWN_KEYS:
            if event.get(key) is not None:
                info[key] = event[key]
        if event.get("event") == "task_started":
            info["pid"] = event.get("pid")
            info["started_at"] = event.get("ts")
    if request is not None:
        spec = request.get("taskspec", {})
        if claim is None:  # the queue a request sits in is the truth
            held = request.get("_queue") == SPAWN_HELD
            state = "held" if held else ("queued" if state == "held" else state)
            if request.get("_queue") == SPAWN_WAITING:
                info["reason"] = waiting_reason(request)
                info["after"] = spec.get("after")
        info.setdefault("name", spec.get("name"))
        info.setdefault("request_id", request.get("request_id"))
        info.setdefault("parent_tid", spec.get("parent_tid"))
    if result is not None:
        state = result["status"]
        info["exit_code"] = result.get("exit_code")
        info["finished_at"] = result.get("finished_at")
        info["error"] = result.get("error")
    if state not in ("running", "paused"):
        info.pop("pid", None)
    if state == "deferred" and events and events[-1].get("reason"):
        info["reason"] = events[-1]["reason"]  # why it waits, e.g. for an absent manager
    from weft.client.progress import latest

    progress = latest(events)
    if progress is not None:
        info["progress"] = progress
    info["status"] = state
    info["events"] = events
    return info


def list_tasks(broker: Broker, *, request_id: str | None = None) -> list[dict[str, Any]]:
    """One row per task (TIDs once each), oldest first."""
    rows: dict[str, dict[str, Any]] = {}
    for event in all_events(broker):
        tid = event.get("tid")
        if not tid or str(event.get("event", "")).startswith("manager_") or \
                event.get("event") in ("launcher_restarted", "manager_lost"):
            continue
        row = rows.setdefault(tid, {"tid": tid, "status": "queued"})
        row["status"] = event.get("status", row["status"])
        for key in SHOWN_KEYS:
            if event.get(key) is not None:
                row[key] = event[key]
        row["reason"], row["error"] = event.get("reason"), event.get("error")
        if event.get("event") == "task_started":
            row["pid"] = event.get("pid")
            row["started_at"] = event.get("ts")
            row.pop("paused_at", None)
            row.pop("paused_s", None)
        elif event.get("event") in ("task_paused", "task_resumed"):
            pause_clock(row, [event])
        elif event.get("event") == "task_progress":
            row["progress"] = {**(event.get("details") or {}), "ts": event.get("ts")}
        if event.get("exit_code") is not None:
            row["exit_code"] = event["exit_code"]
        row["updated_at"] = event.get("ts")
    for queue in (SPAWN_REQUESTS, SPAWN_HELD, SPAWN_WAITING):
        for body, mid in broker.peek_all(queue):
            request = _load(body) or {}
            row = _waiting_row(rows, request, mid, held=queue == SPAWN_HELD)
            if queue == SPAWN_WAITING:
                row["reason"] = waiting_reason(request)
    tasks = sorted(rows.values(), key=lambda r: r["tid"])
    if request_id is not None:
        tasks = [t for t in tasks if t.get("request_id") == request_id]
    return tasks


def _waiting_row(rows: dict[str, dict[str, Any]], request: dict[str, Any], mid: int, *,
                 held: bool) -> dict[str, Any]:
    """Merge a queued or held request into its row: the queue it sits in is its state."""
    spec = request.get("taskspec") or {}
    tid = spec.get("tid") or str(mid)
    row = rows.setdefault(tid, {"tid": tid, "status": "queued"})
    if held:
        row["status"] = "held"
    elif row["status"] == "held":
        row["status"] = "queued"
    for key in ("name", "labels", "group", "priority", "parent_tid"):
        if spec.get(key) is not None:
            row.setdefault(key, spec[key])
    row.setdefault("request_id", request.get("request_id") or spec.get("request_id"))
    if spec and "target" not in row:
        row["target"] = target_text(spec)
    if request.get("not_before"):
        row["not_before"] = request["not_before"]
    return row


def resolve_tid(broker: Broker, given: str) -> str:
    """Accept a full 19-digit TID or any tail of 6+ of its digits when unambiguous."""
    text = given.strip()
    if text.startswith("T") and text[1:].isdigit():
        text = text[1:]
    if not text.isdigit():
        raise UsageError(f"not a task id: {given!r} (expected digits)")
    if len(text) == 19:
        return text
    if len(text) < 6:
        raise UsageError(f"task id {given!r} is too short (give at least 6 digits)")
    matches: set[str] = set()
    for queue, _pending, _total in broker.queue_stats():
        if queue.startswith("T") and "." in queue:
            candidate = queue[1:].split(".", 1)[0]
            if candidate.endswith(text):
                matches.add(candidate)
    for event in all_events(broker):
        tid = str(event.get("tid", ""))
        if tid.endswith(text):
            matches.add(tid)
    for queue in (SPAWN_REQUESTS, SPAWN_HELD, SPAWN_WAITING):
        for _body, mid in broker.peek_all(queue):
            if str(mid).endswith(text):
                matches.add(str(mid))
    for entry in read_all(broker).values():
        if entry.tid.endswith(text):
            matches.add(entry.tid)
    if not matches:
        raise NotFound(f"no task or manager matches {given!r}")
    if len(matches) > 1:
        raise AmbiguousTid(f"{given!r} matches {len(matches)} tasks: {', '.join(sorted(matches)[:5])}")
    return matches.pop()


def overview(broker: Broker) -> dict[str, Any]:
    """Counts for ``weft status``."""
    counts: dict[str, int] = {}
    deferred = []
    for task in list_tasks(broker):
        counts[task["status"]] = counts.get(task["status"], 0) + 1
        if task["status"] == "deferred":
            deferred.append({"tid": task["tid"], "reason": task.get("reason")})
    stats = {name: pending for name, pending, _total in broker.queue_stats()}
    return {
        "tasks": counts,
        "deferred": deferred,
        "queued_requests": stats.get(SPAWN_REQUESTS, 0),
        "held_requests": stats.get(SPAWN_HELD, 0),
        "waiting_requests": stats.get(SPAWN_WAITING, 0),
        "dead_letters": stats.get(SPAWN_REJECTED, 0),
        "log_events": stats.get(TASKS_LOG, 0),
        "registry_rows": stats.get(WORKERS_REGISTRY, 0),
        "blob_store": _blob_usage(broker),
    }


def _blob_usage(broker: Broker) -> dict[str, int]:
    """How many blobs the store holds and their bytes (outputs and results past the chunk size)."""
    from weft.broker.blobs import blob_store
    from weft.errors import WeftError

    try:
        return blob_store(broker).usage()
    except (WeftError, OSError):
        return {"blobs": 0, "bytes": 0}
