"""A job's log: its own entries, then every child's, each tagged with its step and item.

``weft task logs JOB_TID`` prints each child's output lines prefixed by
``step[item]`` so a fan-out's interleaved work can be read apart; the
entries are those of :func:`weft.client.logs.task_log`, plus ``step``,
``item`` and ``child`` keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from weft.broker import Broker
from weft.client.logs import task_log
from weft.jobs import progress


def is_job(broker: Broker, tid: str) -> bool:
    return any(r.get("kind") == "plan" for r in progress.records(broker, tid))


def job_log(broker: Broker, tid: str) -> Iterator[dict[str, Any]]:
    """The job's entries, then each child's in step order and item order."""
    found = progress.records(broker, tid)
    plan = next((r for r in found if r.get("kind") == "plan"), {})
    order = {name: i for i, name in enumerate(plan.get("steps", []))}
    yield from task_log(broker, tid)
    kids = progress.children(found)
    for (step, item), child in sorted(kids.items(), key=lambda kv: (order.get(kv[0][0], 1 << 30),
                                                                      kv[0][1])):
        for entry in task_log(broker, child):
            yield {**entry, "step": step, "item": item, "child": child}


def prefix(entry: dict[str, Any]) -> str:
    """``step[item] `` for a child's entry ('' for the job's own)."""
    if "step" not in entry:
        return ""
    return f"{entry['step']}[{entry['item']}] "
