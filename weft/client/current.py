"""Who am I? For code running inside a weft task.

The manager puts the task's identity in its environment (``WEFT_TASK_TID``,
``WEFT_PARENT_TID``, ``WEFT_REQUEST_ID``, ``WEFT_MANAGER_TID``,
``WEFT_ATTEMPT``, and ``WEFT_CONTEXT`` so ``WeftClient()`` finds the same
project). A task submitted from inside a task records the outer one as its
``parent_tid`` and inherits its request id (see :mod:`weft.client.specs`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CurrentTask:
    """The identity of the task this process runs as."""

    tid: str
    parent_tid: str | None
    request_id: str | None
    manager_tid: str | None
    attempt: int

    def progress(self, fraction: float | None = None, message: str | None = None,
                 **numbers: float) -> dict[str, Any]:
        """Record how far this task got: ``fraction`` (0..1), a short ``message``
        and any named numbers (``loss=0.31``). Shown by ``weft status TID`` and
        ``weft task list``, streamed to followers, read back with
        ``Task.progress()``. Returns what was recorded."""
        from weft.client.progress import report

        return report(self, fraction, message, numbers)


def current_task() -> CurrentTask | None:
    """The task this process runs as, or None outside weft."""
    tid = os.environ.get("WEFT_TASK_TID")
    if not tid:
        return None
    return CurrentTask(
        tid=tid,
        parent_tid=os.environ.get("WEFT_PARENT_TID") or None,
        request_id=os.environ.get("WEFT_REQUEST_ID") or None,
        manager_tid=os.environ.get("WEFT_MANAGER_TID") or None,
        attempt=int(os.environ.get("WEFT_ATTEMPT") or 1),
    )
