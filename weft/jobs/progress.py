"""What a job has submitted, recorded so a restarted job resumes exactly where it was.

Each child of a job is written together with its progress record in one
transaction (fenced on the job's open record, :mod:`weft.jobs.stopping`,
so a stopped job queues nothing more): the child's spawn request (its
message id is the child's TID) and ``{"job", "step", "item", "tid"}`` on
``weft.jobs.progress``. So after any crash either both exist or neither
does: a restarted job reads the records, knows every child it already
submitted, and submits only the items that have none. No item runs twice,
none is skipped.

The job also records, once each, the plan it runs (``kind: "plan"``, its
step names) and how many items each fan-out has (``kind: "items"``), which
is what ``weft job status`` rolls up.
"""

from __future__ import annotations

from typing import Any, Literal

from weft.broker import Broker
from weft.codec import find_objects, loads_object
from weft.names import JOBS_CONTROL, JOBS_PROGRESS, SPAWN_REQUESTS


def records(broker: Broker, job_tid: str) -> list[dict[str, Any]]:
    """Every progress record of one job, oldest first."""
    return find_objects(broker, JOBS_PROGRESS, "job", job_tid)


def children(found: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """(step, item index) -> child TID, from a job's records."""
    return {(str(r["step"]), int(r["item"])): str(r["tid"])
            for r in found if r.get("kind") == "child"}


Kind = Literal["plan", "items", "child"]


def _body(job_tid: str, kind: Kind, **fields: Any) -> str:
    from weft.models import JobRecord

    return JobRecord(job=job_tid, kind=kind, **fields).model_dump_json(exclude_none=True)


def record(broker: Broker, job_tid: str, kind: Kind, **fields: Any) -> None:
    broker.write(JOBS_PROGRESS, _body(job_tid, kind, **fields))


def submit_child(broker: Broker, job_tid: str, step: str, item: int, request: str, *,
                 fence: int) -> str | None:
    """Queue one child and its record atomically; return the child's TID.

    ``fence`` is the id of the job's open record on ``weft.jobs.control``:
    the write happens only while that record exists, checked in the same
    transaction; None when the job was stopped (weft/jobs/stopping.py).
    """
    child = broker.generate_id()
    record_id = broker.generate_id()
    tid = str(child).zfill(19)
    body = _body(job_tid, "child", step=step, item=item, tid=tid)
    done = broker.settle_claim(JOBS_CONTROL, fence, keep=True, ids=[child, record_id],
                               writes=[(SPAWN_REQUESTS, request), (JOBS_PROGRESS, body)])
    return tid if done else None


def plans(broker: Broker) -> list[dict[str, Any]]:
    """The plan record of every job that has started, oldest first (one per job)."""
    seen: dict[str, dict[str, Any]] = {}
    for body, _mid in broker.find_messages(JOBS_PROGRESS, '"kind":"plan"'):
        record = loads_object(body)
        if record is not None and record.get("job") and record["job"] not in seen:
            seen[str(record["job"])] = record
    return list(seen.values())
