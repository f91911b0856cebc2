"""Bounded ``task`` and ``group`` labels for the per-task families.

A task is labelled by what it runs, not by its TID: a function's
``pkg.mod:fn``, or a command's program basename (``python``, ``make``).
Names a user typed could be unbounded, so at most :data:`MAX_TASKS`
distinct values are kept per exposition; later ones become ``other``.
The labels of a task are learnt from its ``task_submitted`` event (written
by the client, seen by ``weft metrics``) or its ``task_admitted`` event
(written by the manager, seen live), and forgotten when it ends.
"""

from __future__ import annotations

import os
from typing import Any

MAX_TASKS = 200
MAX_TRACKED = 100_000
OTHER = "other"


def task_label(event: dict[str, Any]) -> str:
    """The ``task`` label from an event's ``task`` field or its ``spec``."""
    task = event.get("task")
    if not task:
        spec = event.get("spec") or {}
        if spec.get("function"):
            task = spec["function"]
        elif spec.get("command"):
            task = os.path.basename(str(spec["command"][0])) or "command"
    return str(task or "unknown")[:80]


class TaskLabels:
    """tid -> (task, group) for tasks not yet ended, with bounded label values."""

    def __init__(self) -> None:
        self._by_tid: dict[str, tuple[str, str]] = {}
        self._tasks: set[str] = set()

    def note(self, event: dict[str, Any]) -> None:
        tid = str(event.get("tid"))
        if len(self._by_tid) >= MAX_TRACKED:
            self._by_tid.clear()
        task = task_label(event)
        if task not in self._tasks:
            if len(self._tasks) >= MAX_TASKS:
                task = OTHER
            else:
                self._tasks.add(task)
        group = str(event.get("group") or (event.get("spec") or {}).get("group") or "default")
        self._by_tid[tid] = (task, group[:64])

    def pop(self, tid: str) -> tuple[str, str]:
        return self._by_tid.pop(tid, ("unknown", "default"))

    def get(self, tid: str) -> tuple[str, str]:
        return self._by_tid.get(tid, ("unknown", "default"))
