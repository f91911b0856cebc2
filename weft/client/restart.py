"""Restart: run a finished task again, as a new task, from its recorded spec.

The spec comes from the task's submit record (:mod:`weft.client.submitted`).
The new task keeps the old one's name, labels, group, request id and
resources; ``env`` entries are merged in, ``cwd`` and ``command`` replace
the old ones (a new command turns a function task into a command task).
Its own submit record names the old TID as ``restarted_from``. A task that
has not ended is refused: restarting it would run the work twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from weft.broker import Broker
from weft.errors import NotFound, UsageError
from weft.models.states import TERMINAL

# Not carried over: identity, and dependencies (they are met or failed by now).
ORIGINAL_ONLY = ("tid", "parent_tid", "after", "after_mode")


def restart_fields(broker: Broker, tid: str, *, env: Mapping[str, str] | None = None,
                   cwd: str | None = None, command: Sequence[str] | None = None
                   ) -> dict[str, Any]:
    """The checked fields of the new task (raise UsageError / NotFound)."""
    from weft.client.queries import task_status
    from weft.client.submitted import submit_event
    from weft.models.rules import check_fields

    status = task_status(broker, tid)["status"]
    if status not in {str(s) for s in TERMINAL} or status == "rejected":
        raise UsageError(f"task {tid} is {status}: only a task that ended (completed, failed, "
                         "timeout, cancelled, killed) can be restarted")
    event = submit_event(broker, tid)
    if event is None or not isinstance(event.get("spec"), dict):
        raise NotFound(f"task {tid} has no recorded spec (submitted by an older weft, or "
                       "tidied away): submit it again by hand")
    fields: dict[str, Any] = {k: v for k, v in event["spec"].items() if k not in ORIGINAL_ONLY}
    if env:
        fields["env"] = {**(fields.get("env") or {}), **env}
    if cwd is not None:
        fields["cwd"] = cwd
    if command:
        for key in ("function", "args", "kwargs", "shell"):
            fields.pop(key, None)
        fields["command"] = list(command)
    problems = check_fields(fields)
    if problems:
        raise UsageError("invalid task spec: " + "; ".join(problems))
    return fields
