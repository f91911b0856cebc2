"""Why a task that has not started is still waiting, in a few words.

Read from what ``weft task list`` already has for the task: the queue it
sits in (held), its ``not_before`` (delayed), its group's record (paused,
or as many running as its limit allows), and the newest admission event
(deferred, with the reason the manager gave), and its dependencies
(``--after``). Anything else queued is waiting for a manager with a free slot.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any


def why_waiting(row: Mapping[str, Any], now: float | None = None, *,
                groups: Mapping[str, Any] | None = None,
                running: Mapping[str, int] | None = None) -> str | None:
    """None for a task that is not waiting. ``groups`` (records by name) and
    ``running`` (tasks per group) add "group paused" and "group full"."""
    status = row.get("status")
    if status == "held":
        return "held (weft task release)"
    if status not in ("queued", "deferred"):
        return None
    now = time.time() if now is None else now
    not_before = row.get("not_before")
    if not_before and float(not_before) > now:
        return "delayed until " + time.strftime("%H:%M:%S", time.localtime(float(not_before)))
    reason = str(row.get("reason") or "")
    if status == "queued" and reason.startswith("waiting for"):
        return f"dependency: {reason}"
    name = row.get("group") or "default"
    group = (groups or {}).get(name)
    if group is not None and group.paused:
        return f"group {name} paused"
    if group is not None and group.parallel and (running or {}).get(name, 0) >= group.parallel:
        return f"group {name} full ({group.parallel} running)"
    if status == "deferred":
        return f"deferred: {row.get('reason') or 'admission'}"
    return "for a free slot"
