"""Checking a task's dependencies at submit: every one must name a known task.

A new task gets a new TID and may only wait for tasks that already exist,
so ``weft run --after`` can never close a cycle; a cycle can only be drawn
in a job definition, which :mod:`weft.jobs.definition` refuses. What can be
wrong here is a TID that names nothing (a typo, a tidied task): refused
with exit 2 before anything is queued.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from weft.broker import Broker
from weft.errors import InvalidSpec, NotFound, UsageError

MODES = ("all", "any", "finished")


def as_tids(after: Iterable[Any] | Any) -> list[str]:
    """Task handles, TIDs or a comma list, as TID strings (order kept, repeats dropped)."""
    if isinstance(after, str) or hasattr(after, "tid"):
        after = [after]
    out: list[str] = []
    for item in after:
        text = str(getattr(item, "tid", item))
        for part in text.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def resolve_after(broker: Broker, after: Iterable[Any] | Any) -> list[str]:
    """Full TIDs of ``after``; InvalidSpec (exit 2) for any that names no task."""
    from weft.client.logs import known
    from weft.client.queries import resolve_tid

    tids = as_tids(after)
    if not tids:
        raise InvalidSpec("after: name at least one task")
    full: list[str] = []
    for given in tids:
        try:
            tid = resolve_tid(broker, given)
        except NotFound as exc:
            raise InvalidSpec(f"after: unknown task {given!r} ({exc})") from None
        except UsageError as exc:
            raise InvalidSpec(f"after: {exc}") from None
        if not known(broker, tid):
            raise InvalidSpec(f"after: unknown task {given!r}")
        if tid not in full:
            full.append(tid)
    return full
