"""weft's own log lines about tasks, with the task's ids in every line.

A listener on the :class:`~weft.runtime.batch.Batch`: each event a manager
(or an orphaned launcher) writes about a task becomes, when the logging
level lets it through, one line naming the tid and the request id, so a
request can be followed through ``.weft/logs/manager-*.log`` with grep just
as through ``weft events --request-id``. Failures and rejections log at
WARNING (seen with the default level); the rest of the lifecycle at DEBUG.
The level check comes first, so a quiet logger costs one dict lookup.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("weft.tasks")

LEVELS = {
    "task_failed": logging.WARNING,
    "task_timeout": logging.WARNING,
    "task_killed": logging.WARNING,
    "task_rejected": logging.WARNING,
    "task_retrying": logging.INFO,
    "task_requeued": logging.INFO,
    "task_adopted": logging.INFO,
    "task_deferred": logging.INFO,
}
EXTRA_KEYS = ("name", "pid", "attempt", "exit_code", "reason", "error", "parent_tid")


def log_task_event(event: dict[str, Any]) -> None:
    name = event.get("event")
    level = LEVELS.get(name, logging.DEBUG)  # type: ignore[arg-type]
    if not log.isEnabledFor(level) or not str(name).startswith("task_"):
        return
    extras = " ".join(f"{k}={event[k]!r}" if k == "error" else f"{k}={event[k]}"
                      for k in EXTRA_KEYS if event.get(k) is not None)
    log.log(level, "%s tid=%s request_id=%s status=%s %s", name, event.get("tid"),
            event.get("request_id") or "-", event.get("status"), extras)
