"""Progress from inside a task: one ``task_progress`` event per report.

A task reports how far it got (``fraction`` 0..1, a short ``message``, any
named numbers such as ``loss=0.31``); the report is an ordinary event on
``weft.tasks.log``, so everything that reads events sees it with no new
queue: ``weft status TID`` and ``weft task list`` show the latest,
``weft task logs --follow`` and ``client.events(follow=True)`` stream it,
and ``Task.progress()`` returns it. The event's status is ``running``: only
a running task can report.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from weft.errors import ContextError, UsageError
from weft.names import TASKS_LOG

if TYPE_CHECKING:
    from weft.client.client import WeftClient
    from weft.client.current import CurrentTask

EVENT = "task_progress"
MESSAGE_MAX = 200
NUMBERS_MAX = 20

_client: tuple[int, WeftClient] | None = None


def report(me: CurrentTask, fraction: float | None, message: str | None,
           numbers: Mapping[str, Any]) -> dict[str, Any]:
    """Write one progress event for ``me``; return what was recorded.

    Bad values are UsageError: ``fraction`` outside 0..1, a ``message``
    longer than 200 characters, more than 20 numbers or one that is not a
    finite number.
    """
    details = check(fraction, message, numbers)
    from weft.models import LogEvent

    event = LogEvent(event=EVENT, tid=me.tid, status="running", ts=time.time(),
                     manager_tid=me.manager_tid, request_id=me.request_id,
                     parent_tid=me.parent_tid, attempt=me.attempt, pid=os.getpid(),
                     details=details)
    _own_client().broker.write(TASKS_LOG, event.model_dump_json(exclude_none=True))
    return {**details, "ts": event.ts}


def check(fraction: float | None, message: str | None,
          numbers: Mapping[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
                or not 0.0 <= float(fraction) <= 1.0:
            raise UsageError(f"progress: fraction must be a number from 0 to 1, not {fraction!r}")
        details["fraction"] = float(fraction)
    if message is not None:
        if not isinstance(message, str) or len(message) > MESSAGE_MAX:
            raise UsageError(f"progress: message must be text of at most {MESSAGE_MAX} characters")
        details["message"] = message
    if len(numbers) > NUMBERS_MAX:
        raise UsageError(f"progress: at most {NUMBERS_MAX} named numbers")
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise UsageError(f"progress: {name} must be a finite number, not {value!r}")
    if numbers:
        details["numbers"] = dict(numbers)
    return details


def latest(events: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The newest progress report among ``events``, with its ``ts``; None if none."""
    found = None
    for event in events:
        if event.get("event") == EVENT:
            found = {**(event.get("details") or {}), "ts": event.get("ts")}
    return found


def text(progress: Mapping[str, Any] | None) -> str:
    """``40% epoch 3 (loss=0.31)``: the one-line form the CLI shows."""
    if not progress:
        return ""
    parts = []
    if progress.get("fraction") is not None:
        parts.append(f"{progress['fraction'] * 100:.0f}%")
    if progress.get("message"):
        parts.append(str(progress["message"]))
    numbers = progress.get("numbers") or {}
    if numbers:
        parts.append("(" + ", ".join(f"{k}={v:g}" for k, v in numbers.items()) + ")")
    return " ".join(parts)


def _own_client() -> WeftClient:
    """One client per process, found through the task's WEFT_CONTEXT."""
    global _client
    if _client is None or _client[0] != os.getpid():
        from weft.client.client import WeftClient

        if not os.environ.get("WEFT_CONTEXT"):
            raise ContextError("progress: this process does not run inside a weft task")
        _client = (os.getpid(), WeftClient(os.environ["WEFT_CONTEXT"], create=False,
                                           auto_start=False))
    return _client[1]
