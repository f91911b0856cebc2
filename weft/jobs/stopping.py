"""Stopping a job: once STOP (or KILL) of a job returns, none of its children starts.

A job queues its children from its own process, and a STOP reaches that
process only when its manager gets to it. On its own the job could still
queue a child after the STOP was answered, and that child would then run.
So the decision is taken in the broker, not in the job's process:

- **fence**: while a job may queue children it has an *open* record on
  ``weft.jobs.control``; each child is queued in one fenced operation that
  checks that record (:func:`weft.jobs.progress.submit_child`). With the
  record gone nothing is queued, however slow the job is to notice.
- **stop** (:func:`stop_job`, called by :meth:`Task.control` for STOP and
  KILL of a job, so ``weft task stop``, ``client.cancel`` and bulk stop all
  take this path): write a *stopped* record, delete the open record, then
  take every queued child off the queue (the fenced cancel of a queued task),
  STOP the job, STOP (or KILL) each child a manager already took, and wait
  (within the timeout) until each of those has ended. When it returns, no
  child is queued or about to start.
- **opening** (:func:`open_fence`, when the job's process starts or resumes):
  reuse the open record, or write one and then look for a stopped record.
  The stop writes its record before deleting the open one, so whichever
  order the two run in, either the stop deletes the job's record or the job
  sees the stop.

``client.job`` opens the record right after queueing the job, so a STOP that
comes before the job's process has started still takes this path.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from weft.broker import Broker
from weft.codec import loads_object
from weft.errors import WaitTimeout, WeftError
from weft.jobs import progress
from weft.names import JOBS_CONTROL, SPAWN_HELD, SPAWN_REQUESTS, SPAWN_WAITING

if TYPE_CHECKING:
    from weft.client.client import WeftClient
    from weft.client.task import Task

OPEN, STOPPED = "open", "stopped"


def _records(broker: Broker, job_tid: str) -> list[tuple[dict[str, Any], int]]:
    found = []
    for body, mid in broker.find_messages(JOBS_CONTROL, f'"job":"{job_tid}"'):
        record = loads_object(body)
        if record is not None and record.get("job") == job_tid:
            found.append((record, mid))
    return found


def _write(broker: Broker, job_tid: str, state: str, **fields: Any) -> int:
    body = {"v": 1, "job": job_tid, "state": state, "ts": time.time(), **fields}
    return broker.write(JOBS_CONTROL, json.dumps(body, separators=(",", ":")))


def _stopped(found: list[tuple[dict[str, Any], int]]) -> bool:
    return any(r.get("state") == STOPPED for r, _ in found)


def open_fence(broker: Broker, job_tid: str) -> int | None:
    """The id of the job's open record (written if there is none); None once stopped."""
    found = _records(broker, job_tid)
    if _stopped(found):
        return None
    mine = next((mid for r, mid in found if r.get("state") == OPEN), None)
    if mine is None:
        mine = _write(broker, job_tid, OPEN)
        if _stopped(_records(broker, job_tid)):  # a stop came in between: it missed ours
            broker.delete(JOBS_CONTROL, [mine])
            return None
    return mine


def is_open(broker: Broker, tid: str) -> bool:
    """Is ``tid`` a job that may still queue children? (One look at a small queue.)"""
    return any(r.get("state") == OPEN for r, _ in _records(broker, tid))


def close(broker: Broker, job_tid: str, *, command: str, reason: str | None) -> None:
    """From now on the job queues no child: the stopped record, then the open one gone."""
    _write(broker, job_tid, STOPPED, command=command, reason=reason)
    opened = [mid for r, mid in _records(broker, job_tid) if r.get("state") == OPEN]
    if opened:
        broker.delete(JOBS_CONTROL, opened)


def forget(broker: Broker, job_tid: str) -> None:
    """The job has ended: its records are no longer needed."""
    ids = [mid for _r, mid in _records(broker, job_tid)]
    if ids:
        broker.delete(JOBS_CONTROL, ids)


# -- the stop -------------------------------------------------------------------------------
def stop_job(task: Task, command: str, *, timeout: float, reason: str | None) -> dict[str, Any]:
    """STOP or KILL job ``task`` so that none of its children starts after this returns.

    Returns the job's own reply, its ``details["children"]`` counting the
    children cancelled while queued, those stopped while running, and the
    TIDs of any that had not ended by the deadline (their manager did not
    answer in time). The job itself is waited for too (within ``timeout``),
    then its records here are dropped.
    """
    client = task.client
    broker = client.broker
    deadline = time.monotonic() + timeout
    close(broker, task.tid, command=command, reason=reason)
    kids = list(progress.children(progress.records(broker, task.tid)).values())
    cancelled = [tid for tid in kids if _cancel_queued(broker, tid, command)]
    unanswered: WaitTimeout | None = None
    try:
        reply = task.send_control(command, timeout=timeout, reason=reason)
    except WaitTimeout as exc:  # the job's manager did not answer: its children still stop
        reply, unanswered = {}, exc
    if reply.get("status") == "paused":  # frozen, it would end only by the KILL after the grace
        _quietly(task, "RESUME", deadline)
    running = [tid for tid in kids if tid not in cancelled and not client.task(tid).done()]
    for tid in running:  # control: a child that is a job stops its own children too
        _quietly(client.task(tid), command, deadline, reason=reason or f"job {task.tid} stopped")
    unfinished = _wait_ended(client, running, deadline)
    if unanswered is not None:
        raise unanswered
    if not _wait_ended(client, [task.tid], deadline):  # the job ends by the STOP: tidy up
        forget(broker, task.tid)
    reply.setdefault("details", {})["children"] = {
        "cancelled": len(cancelled), "stopped": len(running) - len(unfinished),
        "unfinished": unfinished}
    if reply.get("reply"):
        reply["reply"] = (f"{reply['reply']}; children: {len(cancelled)} cancelled while queued, "
                          f"{len(running)} stopped")
    return reply


def _quietly(task: Task, command: str, deadline: float, *, reason: str | None = None) -> None:
    try:
        task.control(command, timeout=max(0.5, _left(deadline)), reason=reason)
    except WeftError:
        pass  # no answer: what it should have done is waited for, and reported if not done


def _cancel_queued(broker: Broker, tid: str, command: str) -> bool:
    from weft.runtime.attempt import cancel_queued

    return any(cancel_queued(broker, tid, command=command, queue=queue)
               for queue in (SPAWN_REQUESTS, SPAWN_WAITING, SPAWN_HELD))


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _wait_ended(client: WeftClient, tids: list[str], deadline: float) -> list[str]:
    """Wait until every task in ``tids`` has ended or the deadline passed; the rest."""
    left = list(tids)
    marker = client.change_marker()
    while True:
        left = [tid for tid in left if not client.task(tid).done()]
        if not left or _left(deadline) <= 0:
            return left
        marker = client.wait_for_change(marker, timeout=min(0.2, _left(deadline)))
