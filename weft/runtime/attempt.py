"""One attempt of one task: the only code that takes, hands over or ends a claim.

An attempt *belongs to whoever holds its claim*: the spawn request, whose
message id is the task's TID, sitting in one queue (``weft.spawn.requests``
while queued or waiting for a retry, ``T{owner}.reserved`` once a manager
took it). Every step that changes who is responsible for the attempt is one
atomic broker operation on that exact message that says whether it
happened (:meth:`weft.broker.Broker.settle_claim`, a fencing check):

- **claim**: a manager moves the request into its reserved queue;
- **hand over**: the work item is written to ``T{tid}.inbox`` and moved to
  ``T{tid}.reserved``, where it stays until the result is written;
- **settle**: the result (or the retry, or the requeue) and its event are
  written in the same transaction that removes (or moves) the claim;
- **read back**: whoever finds the claim gone (a peer recovered it while
  this owner was frozen, a client cancelled it) has written nothing: it
  logs ``claim_lost`` and stops the attempt's process if it still runs.

A retry keeps the claim's message id (the request is moved back to the spawn
queue with its body rewritten): a task's TID is its spawn message's id for
every attempt, so a request whose taskspec names another tid is refused.
The manager, recovery, the orphaned launcher and the client's cancel all go
through here (docs/decisions/0005-fenced-attempts.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from weft.broker import Broker
from weft.broker.broker import MessageTooLarge
from weft.models import LogEvent, ResultMessage, SpawnRequest
from weft.names import SPAWN_REJECTED, SPAWN_REQUESTS, TASKS_LOG, task_queue
from weft.runtime.batch import HOST, Batch, dumps

log = logging.getLogger("weft.attempt")
ERROR_LIMIT = 500


@dataclass(frozen=True)
class Claim:
    """Where an attempt's spawn request sits now; its id is the TID."""

    queue: str
    message_id: int

    @property
    def tid(self) -> str:
        return str(self.message_id).zfill(19)


def tid_of(message_id: int) -> str:
    return str(message_id).zfill(19)


# -- messages -------------------------------------------------------------
def result_body(**fields: Any) -> str:
    """A result message, built and checked by the model, with exactly the fields given.

    Serialised with ``json.dumps`` (ASCII escapes), not pydantic: a function may
    return a string holding a lone surrogate, which UTF-8 cannot carry.
    """
    return dumps(ResultMessage(**fields).model_dump(include={"v", "type", *fields}))


def event_body(event: str, tid: str, status: str, **fields: Any) -> str:
    """A ``weft.tasks.log`` event built by the model, for writes outside a Batch."""
    record = {k: v for k, v in fields.items() if v is not None}
    record.setdefault("host", HOST)
    return dumps(LogEvent(event=event, tid=tid, status=status, ts=time.time(),
                          **record).model_dump(exclude_none=True))


def short(text: str | None, limit: int = ERROR_LIMIT) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- claim and hand-over ----------------------------------------------------
def claim(broker: Broker, message_id: int, owner_tid: str) -> Claim | None:
    """Move a queued request into the owner's reserved queue; None if someone was first."""
    reserved = task_queue(owner_tid, "reserved")
    moved = broker.move_one(SPAWN_REQUESTS, reserved, message_id=message_id)
    return None if moved is None else Claim(reserved, message_id)


def hand_over(broker: Broker, tid: str, inbox_message: Any, *, attempt: int) -> int | None:
    """Put the attempt's work item in ``T{tid}.reserved``; returns its id (None: no input).

    A later attempt first drops what an earlier attempt's dead host left there.
    """
    if attempt > 1:
        broker.delete_queue(task_queue(tid, "reserved"))
    if inbox_message is None:
        return None
    work_id = broker.write(task_queue(tid, "inbox"), dumps(inbox_message))
    broker.move_one(task_queue(tid, "inbox"), task_queue(tid, "reserved"), message_id=work_id)
    return work_id


def still_owned(broker: Broker, claim_: Claim) -> bool:
    """Read back: is the claim still where its owner left it?"""
    return broker.peek_one(claim_.queue, message_id=claim_.message_id) is not None


# -- settling (batched: written at the owner's next flush, fenced) ----------
def settle_final(batch: Batch, claim_: Claim, *, result: dict[str, Any],
                 work_id: int | None, event: Callable[[], None],
                 on_lost: Callable[[], None]) -> None:
    """The attempt ended: its result, its final event and the end of its claim, together.

    ``event`` writes the final event into the batch (the task's transition);
    a result the broker could not hold fails the task instead, with reason
    ``result_too_large``, so one big value never ends its host.
    """
    body = result_body(**result)
    try:
        batch.broker.check_size(body)
    except MessageTooLarge as exc:
        raise ResultTooLarge(str(exc)) from None
    deletes = [] if work_id is None else [(task_queue(result["tid"], "reserved"), work_id)]
    with batch.fenced(claim_.queue, claim_.message_id, deletes=deletes, on_lost=on_lost):
        batch.write(task_queue(result["tid"], "outbox"), body)
        event()


def settle_retry(batch: Batch, claim_: Claim, *, request: SpawnRequest, work_id: int | None,
                 event: Callable[[], None], on_lost: Callable[[], None]) -> None:
    """The attempt ended and another is due: the same message goes back to the spawn queue,
    rewritten as the next attempt, in the transaction that writes the retry's event."""
    tid = claim_.tid
    deletes = [] if work_id is None else [(task_queue(tid, "reserved"), work_id)]
    with batch.fenced(claim_.queue, claim_.message_id, deletes=deletes, on_lost=on_lost,
                      move_to=SPAWN_REQUESTS,
                      body=dumps(request.model_dump(mode="json", exclude_none=True))):
        event()


class ResultTooLarge(Exception):
    """The result message would exceed the broker's size limit."""


# -- immediate fenced operations ----------------------------------------------
def requeue(broker: Broker, claim_: Claim, *, event: str) -> bool:
    """Put a never-started attempt back on the spawn queue (same id, same FIFO place).

    A half-written hand-off (a work item in ``T{tid}.inbox``/``reserved``) is
    dropped in the same transaction: the next claim writes it again.
    """
    tid = claim_.tid
    stale = [(queue, mid) for queue in (task_queue(tid, "inbox"), task_queue(tid, "reserved"))
             for _body, mid in broker.peek_all(queue)]
    return broker.settle_claim(claim_.queue, claim_.message_id, move_to=SPAWN_REQUESTS,
                               writes=[(TASKS_LOG, event)], deletes=stale)


def fail_now(broker: Broker, claim_: Claim, *, error: str, attempt: int,
             manager_tid: str | None, reason: str = "internal_error") -> bool:
    """The last resort when settling an attempt the usual way raised: a plain
    ``failed`` result and event, no retry, fenced like any settle."""
    tid = claim_.tid
    result = result_body(tid=tid, status="failed", reason=reason, error=short(error),
                         attempt=attempt, finished_at=time.time())
    event = event_body("task_failed", tid, "failed", manager_tid=manager_tid, reason=reason,
                       error=short(error), attempt=attempt)
    return broker.settle_claim(claim_.queue, claim_.message_id,
                               writes=[(task_queue(tid, "outbox"), result), (TASKS_LOG, event)])


def drop(broker: Broker, claim_: Claim) -> bool:
    """End a claim whose attempt is already settled (its host died between the two)."""
    return broker.settle_claim(claim_.queue, claim_.message_id)


def dead_letter(broker: Broker, claim_: Claim, *, problem: str, manager_tid: str | None,
                reason: str = "invalid_request", ids: dict[str, Any] | None = None,
                attempt: int = 1, details: dict[str, Any] | None = None) -> bool:
    """Move a request that can never run to ``weft.spawn.rejected``, with a result and an
    event that say why, in one transaction: a waiting client is released either way."""
    tid = claim_.tid
    ids = ids or {}
    error = short(problem)
    result = result_body(tid=tid, status="rejected", reason=reason, error=error,
                         attempt=attempt, finished_at=time.time(),
                         request_id=ids.get("request_id"), name=ids.get("name"))
    event = event_body("task_rejected", tid, "rejected", manager_tid=manager_tid, reason=reason,
                       error=error, attempt=attempt,
                       details={"queue": SPAWN_REJECTED, **(details or {})}, **ids)
    return broker.settle_claim(claim_.queue, claim_.message_id, move_to=SPAWN_REJECTED,
                               writes=[(task_queue(tid, "outbox"), result), (TASKS_LOG, event)])


def cancel_queued(broker: Broker, tid: str, *, command: str,
                  queue: str = SPAWN_REQUESTS) -> bool:
    """STOP/KILL of a task whose request waits in ``queue`` (the spawn queue, for a
    first attempt or a retry's delay; or another queue a request waits in).

    Takes the request and writes the ``cancelled`` result and event in one
    transaction; False when no such request has this TID (a manager holds it).
    """
    if not tid.isdigit():
        return False
    message_id = int(tid)
    found = broker.peek_one(queue, message_id=message_id)
    if found is None:
        return False
    ident, attempt = salvage_ids(found[0]), _attempt_of(found[0])
    reason = command.lower()
    result = result_body(tid=tid, status="cancelled", reason=reason,
                         error="cancelled before it started", finished_at=time.time(),
                         attempt=attempt, request_id=ident.get("request_id"),
                         name=ident.get("name"))
    event = event_body("task_cancelled", tid, "cancelled", reason=f"{reason} while queued",
                       attempt=attempt, **ident)
    return broker.settle_claim(queue, message_id,
                               writes=[(task_queue(tid, "outbox"), result), (TASKS_LOG, event)])


def _attempt_of(body: str) -> int:
    try:
        raw = json.loads(body)
        attempt = raw.get("attempt") if isinstance(raw, dict) else None
        return attempt if isinstance(attempt, int) and attempt >= 1 else 1
    except Exception:  # noqa: BLE001 - any unreadable body is a first attempt
        return 1


def salvage_ids(body: str) -> dict[str, Any]:
    """The request id, parent and name of a request, when they can still be read.

    Never raises: the body may be anything a writer put on the queue
    (nested thousands deep, not JSON, wrong types).
    """
    try:
        raw = json.loads(body)
    except Exception:  # noqa: BLE001 - RecursionError and friends: nothing to salvage
        return {}
    if not isinstance(raw, dict):
        return {}
    spec = raw["taskspec"] if isinstance(raw.get("taskspec"), dict) else {}
    ids = {"request_id": raw.get("request_id") or spec.get("request_id"),
           "parent_tid": spec.get("parent_tid"), "name": spec.get("name")}
    return {k: v for k, v in ids.items() if isinstance(v, str) and len(v) <= 200}


def lost_claim_event(batch: Batch, tid: str, status: str, claim_: Claim, **fields: Any) -> None:
    """Say once, in the log and the manager's own log file, that an attempt's writes were dropped."""
    log.warning("claim_lost tid=%s claim=%s:%s: another owner settled this attempt; "
                "its writes were dropped", tid, claim_.queue, claim_.message_id)
    batch.event("claim_lost", tid, status, reason="claim_lost",
                details={"claim_queue": claim_.queue, "claim_id": claim_.message_id}, **fields)
