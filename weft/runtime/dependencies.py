"""Dependencies between tasks: release a waiting request once what it waits for has ended.

A task submitted with ``after`` is written to ``weft.spawn.waiting``, not to
``weft.spawn.requests``, so no manager's dispatch ever looks at it: the hot
path stays as it is. Every manager runs a :class:`Resolver` from its loop
when the broker changed or it wrote something. The resolver:

- **releases** a waiting request whose dependencies are satisfied with one
  atomic ``move`` into ``weft.spawn.requests`` that keeps the message id
  (so the TID is still the message id); any manager may then claim it;
- **cancels** one that can never be satisfied (a dependency failed, was
  cancelled, rejected, timed out or killed): it moves the request into
  ``weft.spawn.cancelling`` (exactly one resolver wins the move), writes
  the ``cancelled`` result and event in one transaction, then deletes it.
  A resolver that dies in between leaves the request there; the next
  sweep finishes it (result written only if absent). A task cancelled this
  way is itself a failed dependency, so everything downstream is cancelled
  in the same pass.

State is the broker's alone: a dependency's outcome is its result on
``T{tid}.outbox`` (looked up on a full check: at start, and every
``FULL_CHECK_EVERY`` seconds, which also covers events committed out of id
order on PostgreSQL) or a terminal event in ``weft.tasks.log`` read from a
cursor in between. Terminal states never change, so they are cached.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from weft.broker import Broker
from weft.codec import loads_object
from weft.models import TERMINAL, LogEvent, ResultMessage
from weft.names import (
    SPAWN_CANCELLING,
    SPAWN_REJECTED,
    SPAWN_REQUESTS,
    SPAWN_WAITING,
    TASKS_LOG,
    task_queue,
)
from weft.runtime.batch import HOST

FULL_CHECK_EVERY = 2.0
_TERMINAL = frozenset(state.value for state in TERMINAL)


@dataclass(frozen=True)
class Waiting:
    """One request in ``weft.spawn.waiting``: what it waits for and how."""

    message_id: int
    tid: str
    after: tuple[str, ...]
    mode: str
    ids: dict[str, Any]  # request_id, parent_tid, name: copied onto its result and event


def verdict(after: Iterable[str], mode: str, ended: Mapping[str, str]) -> tuple[str, str | None]:
    """``("wait"|"release"|"cancel", reason)`` for one waiting task. Pure.

    ``ended`` maps each dependency known to have ended to its terminal
    status. ``all``: every dependency completed (one failure cancels);
    ``any``: one completed (cancelled once all ended and none did);
    ``finished``: every dependency ended, whatever the outcome.
    """
    deps = list(after)
    done = [tid for tid in deps if tid in ended]
    failed = [tid for tid in done if ended[tid] != "completed"]
    if mode == "finished":
        return ("release", None) if len(done) == len(deps) else ("wait", None)
    if mode == "any":
        if len(failed) < len(done):
            return "release", None
        if len(failed) == len(deps):
            return "cancel", _failed_reason(failed)
        return "wait", None
    if failed:
        return "cancel", _failed_reason(failed[:1])
    return ("release", None) if len(done) == len(deps) else ("wait", None)


def _failed_reason(failed: list[str]) -> str:
    if len(failed) == 1:
        return f"dependency {failed[0]} failed"
    return f"dependencies {', '.join(failed)} failed"


def parse_waiting(body: str, message_id: int) -> Waiting:
    """The parts of a waiting request the resolver needs; ValueError if unusable."""
    raw = loads_object(body)
    spec = raw.get("taskspec") if raw else None
    if not isinstance(spec, dict):
        raise ValueError("a waiting request must be a JSON object with a taskspec")
    after = spec.get("after")
    if not isinstance(after, list) or not after or not all(isinstance(t, str) for t in after):
        raise ValueError("a waiting request needs taskspec.after: a list of TIDs")
    mode = spec.get("after_mode") or "all"
    if mode not in ("all", "any", "finished"):
        raise ValueError(f"unknown after_mode {mode!r}")
    ids = {"request_id": raw.get("request_id") or spec.get("request_id"),  # type: ignore[union-attr]
           "parent_tid": spec.get("parent_tid"), "name": spec.get("name")}
    return Waiting(message_id, str(spec.get("tid") or str(message_id).zfill(19)), tuple(after),
                   mode, {k: v for k, v in ids.items() if isinstance(v, str)})


def result_status(broker: Broker, tid: str) -> str | None:
    """The terminal status on a task's outbox, if it has a result."""
    queue = task_queue(tid, "outbox")
    ids = broker.find_ids(queue, '"type":"result"')
    if not ids:
        return None
    msg = broker.peek_one(queue, message_id=max(ids))
    body = loads_object(msg[0]) if msg else None
    status = body.get("status") if body else None
    return status if status in _TERMINAL else None


class Resolver:
    """Releases and cancels waiting requests; one per manager, state in the broker."""

    def __init__(self, broker: Broker, *, manager_tid: str) -> None:
        self.broker = broker
        self.manager_tid = manager_tid
        self.ended: dict[str, str] = {}  # dependency TID -> terminal status (never changes)
        self.cursor: int | None = None  # last weft.tasks.log id read; None: full check due
        self.next_full = 0.0
        self.next_sweep = 0.0
        self._parsed: dict[int, Waiting] = {}
        self._stuck: set[int] = set()  # cancelling entries seen by the previous sweep
        self._looked_up: set[str] = set()  # dependencies whose outbox was read since the cursor

    def poll(self, now: float | None = None) -> int:
        """Release or cancel what can be; return how many requests were released."""
        now = time.monotonic() if now is None else now
        if now >= self.next_sweep:
            self.next_sweep = now + FULL_CHECK_EVERY
            self._sweep_cancelling()
        if self.broker.peek_one(SPAWN_WAITING) is None:  # the common case: one cheap query
            self.cursor = None  # nothing waits: read nothing until something does
            self._looked_up.clear()
            return 0
        full = self.cursor is None or now >= self.next_full
        waiting = self._waiting()
        if full:
            self.cursor = self.broker.generate_id()
            self.next_full = now + FULL_CHECK_EVERY
            self._looked_up.clear()
        else:
            self._read_log({tid for w in waiting for tid in w.after})
        # A dependency first seen now may have ended before the cursor: look it up once.
        for tid in {tid for w in waiting for tid in w.after} - self._looked_up:
            self._looked_up.add(tid)
            if tid not in self.ended:
                status = result_status(self.broker, tid)
                if status is not None:
                    self.ended[tid] = status
        return self._settle(waiting)

    def _waiting(self) -> list[Waiting]:
        found: list[Waiting] = []
        seen: set[int] = set()
        for body, mid in self.broker.peek_all(SPAWN_WAITING):
            seen.add(mid)
            item = self._parsed.get(mid)
            if item is None:
                try:
                    item = self._parsed[mid] = parse_waiting(body, mid)
                except ValueError as exc:
                    self._dead_letter(mid, body, str(exc))
                    continue
            found.append(item)
        self._parsed = {k: v for k, v in self._parsed.items() if k in seen}
        return found

    def _read_log(self, deps: set[str]) -> None:
        for body, mid in self.broker.peek_all(TASKS_LOG, after=self.cursor):
            self.cursor = mid
            if '"status":"' not in body:
                continue
            event = loads_object(body)
            if event is None:
                continue
            tid, status = event.get("tid"), event.get("status")
            if tid in deps and status in _TERMINAL:
                self.ended[str(tid)] = str(status)

    def _settle(self, waiting: list[Waiting]) -> int:
        """Act on every verdict; repeat while a cancellation unblocks another verdict."""
        released = 0
        pending = list(waiting)
        changed = True
        while changed and pending:
            changed = False
            for item in list(pending):
                action, reason = verdict(item.after, item.mode, self.ended)
                if action == "wait":
                    continue
                pending.remove(item)
                if action == "release":
                    if self.broker.move_one(SPAWN_WAITING, SPAWN_REQUESTS,
                                            message_id=item.message_id) is not None:
                        released += 1
                elif self._cancel(item, reason or "dependency failed"):
                    self.ended[item.tid] = "cancelled"
                    changed = True
                self._parsed.pop(item.message_id, None)
        # Keep the cache to what is still waited on.
        live = {tid for item in pending for tid in item.after}
        self.ended = {tid: s for tid, s in self.ended.items() if tid in live}
        self._looked_up &= live
        return released

    def _cancel(self, item: Waiting, reason: str) -> bool:
        if self.broker.move_one(SPAWN_WAITING, SPAWN_CANCELLING,
                                message_id=item.message_id) is None:
            return False  # another resolver, or a client's STOP, got it first
        self._write_cancelled(item, reason)
        self.broker.delete(SPAWN_CANCELLING, [item.message_id])
        return True

    def _write_cancelled(self, item: Waiting, reason: str) -> None:
        now = time.time()
        result = ResultMessage(tid=item.tid, status="cancelled", reason="dependency_failed",
                               error=reason, finished_at=now, **item.ids)
        event = LogEvent(event="task_cancelled", tid=item.tid, status="cancelled", ts=now,
                         manager_tid=self.manager_tid, host=HOST, reason=reason,
                         details={"after": list(item.after)}, **item.ids)
        self.broker.write_atomic([
            (task_queue(item.tid, "outbox"), result.model_dump_json(exclude_none=True)),
            (TASKS_LOG, event.model_dump_json(exclude_none=True)),
        ])

    def _sweep_cancelling(self) -> None:
        """Finish cancellations a resolver died in the middle of (seen on two sweeps)."""
        present: set[int] = set()
        for body, mid in self.broker.peek_all(SPAWN_CANCELLING):
            present.add(mid)
            if mid not in self._stuck:
                continue
            try:
                item = parse_waiting(body, mid)
            except ValueError:
                self.broker.move_one(SPAWN_CANCELLING, SPAWN_REJECTED, message_id=mid)
                continue
            if result_status(self.broker, item.tid) is None:
                self._write_cancelled(item, "a dependency failed (cancelled by recovery)")
            self.broker.delete(SPAWN_CANCELLING, [mid])
        self._stuck = present

    def _dead_letter(self, mid: int, body: str, problem: str) -> None:
        if self.broker.move_one(SPAWN_WAITING, SPAWN_REJECTED, message_id=mid) is None:
            return
        tid = str(mid).zfill(19)
        now = time.time()
        result = ResultMessage(tid=tid, status="rejected", reason="invalid_request",
                               error=problem[:500], finished_at=now)
        event = LogEvent(event="task_rejected", tid=tid, status="rejected", ts=now,
                         manager_tid=self.manager_tid, host=HOST, reason="invalid_request",
                         error=problem[:500], details={"queue": SPAWN_REJECTED})
        self.broker.write_atomic([
            (task_queue(tid, "outbox"), result.model_dump_json(exclude_none=True)),
            (TASKS_LOG, event.model_dump_json(exclude_none=True)),
        ])
