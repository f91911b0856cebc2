"""Settle what a dead manager was responsible for, so nothing it accepted is lost.

A manager keeps each claimed spawn request in ``T{mgr}.reserved`` until that
attempt is settled (its result is written or its retry is queued). So when a
manager dies, its reserved queue lists exactly the attempts nobody has
finished. Each one is in one of three states, told apart by the log:

- **settled** (a final or ``task_retrying`` event exists for that attempt:
  the manager died between writing and deleting) → drop the claim;
- **started** (``task_started``/``task_adopted`` for that attempt, or the
  orphaned launcher knows it forked it) → it must not run again: if its
  process still lives on this host, leave it alone for now; once it is gone
  without a result, finish it as ``failed``/``consumer_lost`` (retried if
  its spec says so);
- **never started** → back to ``weft.spawn.requests`` with an atomic move
  that keeps the id (so the TID and FIFO position are kept).

Who settles: a dead manager's own launcher, when it is alive (it adopts the
running tasks, see :mod:`weft.runtime.orphan`); otherwise any live manager,
at start and on every heartbeat, once :func:`registry.recoverable` says so
(on this host: manager and launcher PIDs gone, create times checked; on
another host: its lease expired). A peer first moves each claim into its own
reserved queue, so when several peers race exactly one acts on each claim,
and if it dies in turn the claim is found in *its* queue.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from weft.broker import Broker
from weft.codec import loads_object
from weft.models import TaskState
from weft.names import TASKS_LOG, WORKERS_REGISTRY, task_queue
from weft.runtime import attempt, registry
from weft.runtime.batch import HOST, Batch, dumps
from weft.runtime.consumer import FINAL_EVENTS, Consumer
from weft.runtime.outcome import lost

SETTLED_EVENTS = frozenset({*FINAL_EVENTS.values(), "task_retrying", "task_rejected"})
STARTED_EVENTS = frozenset({"task_started", "task_adopted"})
# A pid whose process started this long after the task did is someone else's.
PID_REUSE_SLACK = 2.0


@dataclass
class Tally:
    requeued: int = 0
    finished_lost: int = 0
    dropped: int = 0
    waiting: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class _Settler:
    """The ConsumerHost of a task finished on a dead host's behalf: nothing to signal."""

    def __init__(self, manager_tid: str) -> None:
        self.manager_tid = manager_tid

    def signal(self, tid: str, sig: str, reason: str | None, grace: float | None = None) -> None:
        return None


def recover_dead_managers(broker: Broker, batch: Batch, my_tid: str) -> int:
    """Settle the claims of every recoverable dead manager.

    Returns how many claims were requeued or finished (either may have put a
    request on the spawn queue, which the caller's own writes do not signal).
    """
    now = time.time()
    requeued = 0
    for entry in registry.read_all(broker).values():
        record = entry.record
        if entry.tid == my_tid or not registry.recoverable(record, now):
            continue
        tally = settle_claims(broker, batch, owner_tid=entry.tid, my_tid=my_tid)
        batch.flush()
        requeued += tally.requeued + tally.finished_lost
        if tally.waiting:
            continue  # a task of it still runs here: look again on the next heartbeat
        stopped = dict(record, status="stopped", stop_reason="dead (recovered by a peer)",
                       heartbeat_at=now)
        broker.write(WORKERS_REGISTRY, dumps(stopped))
        broker.delete(WORKERS_REGISTRY, [entry.message_id])
        batch.event("manager_lost", entry.tid, "stopped", manager_tid=my_tid, reason="dead",
                    details={**tally.as_dict(), "pid": record.get("pid"),
                             "host": record.get("host")})
    return requeued


def settle_claims(broker: Broker, batch: Batch, *, owner_tid: str, my_tid: str,
                  running: frozenset[str] = frozenset(),
                  launched: dict[str, int] | None = None) -> Tally:
    """Settle every claim in ``T{owner_tid}.reserved`` (see the module docstring).

    ``running`` are TIDs the caller itself still runs (an orphaned launcher);
    ``launched`` maps TIDs the caller forked to the attempt it forked.
    """
    tally = Tally()
    reserved = task_queue(owner_tid, "reserved")
    for body, mid in list(broker.peek_all(reserved)):
        tid, number = claim_identity(body, mid)
        if tid in running:
            continue
        events = attempt_events(broker, tid, number)
        ended = any(e.get("event") in SETTLED_EVENTS for e in events)
        started = next((e for e in events if e.get("event") in STARTED_EVENTS), None)
        if not ended and started is not None and process_may_live(started):
            tally.waiting += 1
            continue
        # Own the claim before writing anything for it: with several recoverers
        # (or a recoverer and an orphan), exactly one acts on each claim.
        claim = _take(broker, reserved, owner_tid, my_tid, mid)
        if claim is None:
            continue  # another peer took it
        settled = attempt_settled(broker, batch, tid, number, events, owner_tid)
        if settled:
            # Died between the settling writes and the deletes: finish the deletes.
            if settled == "final":
                broker.delete_queue(task_queue(tid, "reserved"))  # no later attempt exists
            batch.flush()
            attempt.drop(broker, claim)
            tally.dropped += 1
        elif started is not None or (launched or {}).get(tid) == number:
            _finish_lost(broker, batch, claim, body, started, my_tid)
            tally.finished_lost += 1
        elif attempt.requeue(broker, claim, event=_requeued_event(tid, body, owner_tid)):
            tally.requeued += 1
    return tally


def claim_identity(body: str, mid: int) -> tuple[str, int]:
    """(TID, attempt) of a claimed spawn request; the TID defaults to its message id."""
    try:
        raw = json.loads(body)
        tid = raw["taskspec"].get("tid")
        attempt = int(raw.get("attempt") or 1)
    except (ValueError, KeyError, TypeError, AttributeError):
        tid, attempt = None, 1
    return (tid or str(mid).zfill(19)), attempt


def attempt_settled(broker: Broker, batch: Batch, tid: str, attempt: int,
                    events: list[dict[str, Any]], owner_tid: str) -> str | None:
    """``"final"``, ``"retried"`` or None: was this attempt's ending already written?

    The result is written before its event (one commit each), so a result on
    the outbox settles the attempt even when its host died before the event;
    the missing event is written now. A retry and its event commit together.
    """
    if any(e.get("event") in FINAL_EVENTS.values() for e in events):
        return "final"
    if any(e.get("event") in SETTLED_EVENTS for e in events):
        return "retried"
    for body, _ in broker.peek_all(task_queue(tid, "outbox")):
        if '"result"' not in body:  # cheap filter before parsing
            continue
        try:
            result = json.loads(body)
            state = TaskState(result.get("status"))
        except (ValueError, AttributeError):
            continue
        if result.get("type") == "result" and int(result.get("attempt") or 1) == attempt and state in FINAL_EVENTS:
            batch.event(FINAL_EVENTS[state], tid, state.value, attempt=attempt,
                        manager_tid=owner_tid, exit_code=result.get("exit_code"),
                        reason=result.get("reason"), request_id=result.get("request_id"),
                        details={"recovered": "event written after its host died"})
            return "final"
    return None


def attempt_events(broker: Broker, tid: str, attempt: int) -> list[dict[str, Any]]:
    """This task's log events that belong to ``attempt``, oldest first."""
    out = []
    for body, _mid in broker.find_messages(TASKS_LOG, f'"tid":"{tid}"'):
        event = loads_object(body)
        if event is not None and event.get("tid") == tid and int(event.get("attempt") or 1) == attempt:
            out.append(event)
    return out


def process_may_live(started: dict[str, Any]) -> bool:
    """Could the task process named by a ``task_started`` event still be running?

    Only judged on the host that recorded it; elsewhere the owner's expired
    lease already says the whole host is gone.
    """
    pid = int(started.get("pid") or 0)
    if not pid or started.get("host") != HOST:
        return False
    from weft.resources.telemetry import pid_create_time

    created = pid_create_time(pid)
    if created is None:
        return False
    return created <= float(started.get("ts") or 0) + PID_REUSE_SLACK


def _take(broker: Broker, reserved: str, owner_tid: str, my_tid: str,
          mid: int) -> attempt.Claim | None:
    """Own the claim before acting on it (a move of that exact message, which has one winner)."""
    if owner_tid == my_tid:
        return attempt.Claim(reserved, mid)
    mine = task_queue(my_tid, "reserved")
    if broker.move_one(reserved, mine, message_id=mid) is None:
        return None
    return attempt.Claim(mine, mid)


def _requeued_event(tid: str, body: str, owner_tid: str) -> str:
    """The ``task_requeued`` event, its request id and parent kept so it stays correlated."""
    return attempt.event_body("task_requeued", tid, "queued", reason="manager_lost",
                              details={"from_manager": owner_tid}, **attempt.salvage_ids(body))


def _finish_lost(broker: Broker, batch: Batch, claim: attempt.Claim, body: str,
                 started: dict[str, Any] | None, my_tid: str) -> None:
    """Write the result of an attempt whose process and host are both gone."""
    from weft.runtime.intake import parse

    try:
        cand = parse(body, claim.message_id)
    except ValueError as exc:
        attempt.dead_letter(broker, claim, problem=str(exc), manager_tid=my_tid,
                            ids=attempt.salvage_ids(body))
        return
    work = broker.peek_one(task_queue(cand.tid, "reserved"))
    consumer = Consumer(cand.spec, request=cand.request, batch=batch, host=_Settler(my_tid),
                        claim_id=claim.message_id, work_id=work[1] if work else None,
                        state=TaskState.RUNNING,
                        pid=started.get("pid") if started else None,
                        started_at=started.get("ts") if started else None)
    consumer.finish(lost("consumer_lost", "the task's manager and launcher died before it "
                                          "reported a result"))
    batch.flush()
