"""Is a manager paused, and for how long has a task been paused?

A manager's registry record says ``paused`` only from its next heartbeat
on; its ``manager_paused`` / ``manager_resumed`` events are written at
once. The newer of the two wins, so ``weft worker list`` says ``paused``
the moment ``weft task pause MANAGER`` returns. A task's paused time is
the sum of its ``task_paused`` → ``task_resumed`` spans, so its elapsed
clock stops while it is paused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from weft.broker import Broker

PAUSE_EVENTS = {"manager_paused": True, "manager_resumed": False,
                "task_paused": True, "task_resumed": False}


def manager_paused(broker: Broker, tid: str, record: dict[str, Any]) -> bool:
    from weft.codec import loads_object
    from weft.names import TASKS_LOG

    beat = float(record.get("heartbeat_at") or 0)
    newest: tuple[float, bool] = (beat, bool(record.get("paused")))
    # Message ids are nanosecond timestamps: read only the events since the
    # heartbeat (a second or so of log), not the manager's whole history.
    since = max(0, int((beat - 1.0) * 1e9))
    for body, _mid in broker.find_messages(TASKS_LOG, f'"tid":"{tid}"', after=since):
        event = loads_object(body) or {}
        if event.get("event") in PAUSE_EVENTS and float(event.get("ts") or 0) >= newest[0]:
            newest = (float(event.get("ts") or 0), PAUSE_EVENTS[event["event"]])
    return newest[1]


def pause_clock(row: dict[str, Any], events: Iterable[dict[str, Any]]) -> None:
    """Fold pause/resume events into ``row``: ``paused_at`` (while paused) and
    ``paused_s`` (seconds spent paused before)."""
    for event in events:
        name = event.get("event")
        if name == "task_paused":
            row["paused_at"] = event.get("ts")
        elif name == "task_resumed" and row.get("paused_at"):
            row["paused_s"] = row.get("paused_s", 0.0) + float(event.get("ts") or 0) - float(
                row.pop("paused_at"))


def elapsed(row: dict[str, Any], now: float) -> float | None:
    """Running time without the paused spans; None before it started."""
    started = row.get("started_at")
    if not started:
        return None
    end = float(row.get("paused_at") or now)
    return round(max(0.0, end - float(started) - float(row.get("paused_s") or 0)), 3)
