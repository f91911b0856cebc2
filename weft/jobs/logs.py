"""A job's log: its own entries, then every child's, each tagged with its step and item.

``weft task logs JOB_TID`` prints each child's output lines prefixed by
``step[item]`` so a fan-out's interleaved work can be read apart; the
entries are those of :func:`weft.client.logs.task_log`, plus ``step``,
``item`` and ``child`` keys.

With ``--follow`` (:func:`follow_job`) the same entries arrive as they are
written, in the order they were written (broker ids), children the job
queues while we follow included, until the job and every child it started
have ended.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from weft.broker import Broker
from weft.client.logs import TaskLog, task_log
from weft.client.polling import wait_for_change
from weft.codec import loads_object
from weft.jobs import progress, stopping
from weft.names import JOBS_PROGRESS

# After the job's result, children still going are followed this much longer at most
# (a child whose manager died may never get a result: do not wait for it forever).
FOLLOW_GRACE = 10.0
LOOK_AGAIN = 1.0  # seconds between looks when the broker cannot say it changed


def is_job(broker: Broker, tid: str) -> bool:
    return stopping.is_open(broker, tid) or \
        any(r.get("kind") == "plan" for r in progress.records(broker, tid))


def job_log(broker: Broker, tid: str, *, follow: bool = False) -> Iterator[dict[str, Any]]:
    """The job's entries, then each child's in step order and item order
    (``follow``: as they are written, see :func:`follow_job`)."""
    if follow:
        yield from follow_job(broker, tid)
        return
    found = progress.records(broker, tid)
    plan = next((r for r in found if r.get("kind") == "plan"), {})
    order = {name: i for i, name in enumerate(plan.get("steps", []))}
    yield from task_log(broker, tid)
    kids = progress.children(found)
    for (step, item), child in sorted(kids.items(), key=lambda kv: (order.get(kv[0][0], 1 << 30),
                                                                      kv[0][1])):
        for entry in task_log(broker, child):
            yield {**entry, "step": step, "item": item, "child": child}


class _Children:
    """The job's children as they are queued, each with its own incremental log."""

    def __init__(self, broker: Broker, job_tid: str) -> None:
        self.broker = broker
        self.job_tid = job_tid
        self.seen: set[int] = set()  # progress record ids already read
        self.logs: dict[str, tuple[TaskLog, str, int]] = {}

    def discover(self) -> None:
        """Read the job's progress records not seen yet (all ids are listed each time:
        on PostgreSQL records may commit out of id order)."""
        ids = self.broker.find_all_ids(JOBS_PROGRESS, f'"job":"{self.job_tid}"')
        for mid in ids:
            if mid in self.seen:
                continue
            self.seen.add(mid)
            found = self.broker.peek_one(JOBS_PROGRESS, message_id=mid)
            record = loads_object(found[0]) if found is not None else None
            if record is None or record.get("kind") != "child" or record.get("job") != self.job_tid:
                continue
            child = str(record["tid"])
            # Nothing about a child is written before it is queued: start reading there.
            log = TaskLog(self.broker, child, since=int(child) - 1)
            self.logs[child] = (log, str(record["step"]), int(record["item"]))

    def read(self) -> list[dict[str, Any]]:
        entries = []
        for child, (log, step, item) in self.logs.items():
            if not log.finished:
                entries += [{**e, "step": step, "item": item, "child": child} for e in log.read()]
        return entries

    @property
    def finished(self) -> bool:
        return all(log.finished for log, _s, _i in self.logs.values())


def follow_job(broker: Broker, tid: str) -> Iterator[dict[str, Any]]:
    """The job's entries and its children's, interleaved as written, until all have ended."""
    own = TaskLog(broker, tid)
    children = _Children(broker, tid)
    version = broker.data_version()
    ended_at: float | None = None
    while True:
        children.discover()
        entries = own.read() + children.read()
        entries.sort(key=lambda e: e["id"])
        yield from entries
        if own.finished:
            ended_at = ended_at if ended_at is not None else time.monotonic()
            if children.finished or time.monotonic() - ended_at > FOLLOW_GRACE:
                return
        version = wait_for_change(broker, version, timeout=LOOK_AGAIN)


def prefix(entry: dict[str, Any]) -> str:
    """``step[item] `` for a child's entry ('' for the job's own)."""
    if "step" not in entry:
        return ""
    return f"{entry['step']}[{entry['item']}] "
