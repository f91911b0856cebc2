"""Reading the spawn queue: parse, dead-letter, and pick what is runnable.

Parsing is cached by message id, so a deep queue is parsed once, not once
per dispatch step. A request that cannot be parsed or validated, or whose
taskspec names a tid other than its own message id (a task's TID *is* its
spawn message's id, for every attempt), is moved (atomically, keeping its
id, with its result and event in the same transaction) to
``weft.spawn.rejected`` with the reason; it never blocks the queue and never
crashes the reader, whatever the body holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from weft.broker import Broker
from weft.errors import describe_validation_error
from weft.models import SpawnRequest, TaskSpec
from weft.names import SPAWN_REQUESTS
from weft.runtime import attempt
from weft.runtime.batch import Batch
from weft.runtime.gate import Gate

WINDOW = 64
SCAN_LIMIT = 1024
CACHE_LIMIT = 4096


@dataclass(frozen=True)
class Candidate:
    message_id: int
    request: SpawnRequest
    spec: TaskSpec
    body: str

    @property
    def tid(self) -> str:
        assert self.spec.tid is not None
        return self.spec.tid

    @property
    def priority(self) -> int:
        return self.spec.priority


def parse(body: str, message_id: int) -> Candidate:
    """Validate one spawn request; raise ValueError naming the problem (and nothing else)."""
    try:
        return _parse(body, message_id)
    except ValueError:
        raise
    except RecursionError:
        raise ValueError("not a usable spawn request: nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - any body at all must become a reason
        raise ValueError(f"not a usable spawn request: {type(exc).__name__}: {exc}") from None


def _parse(body: str, message_id: int) -> Candidate:
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("a spawn request must be a JSON object")
    try:
        request = SpawnRequest.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc, what="spawn request")) from None
    spec = request.taskspec
    own = attempt.tid_of(message_id)
    if spec.tid is not None and spec.tid != own:
        raise ValueError(f"taskspec tid {spec.tid} is not this request's id {own}: a task's "
                         "TID is its spawn message's id (leave tid out)")
    updates: dict[str, Any] = {}
    if spec.tid is None:
        updates["tid"] = own
    if spec.request_id is None and request.request_id:
        updates["request_id"] = request.request_id
    if updates:
        spec = spec.model_copy(update=updates)
    return Candidate(message_id, request, spec, body)


class Intake:
    def __init__(self, broker: Broker, batch: Batch, *, manager_tid: str,
                 gate: Gate | None = None) -> None:
        self.broker = broker
        self.gate = gate  # trust checks (allow-list, secrets) before anything runs
        self.batch = batch
        self.manager_tid = manager_tid
        self._cache: dict[int, Candidate] = {}
        self.next_due: float | None = None

    def runnable(self, now: float) -> list[Candidate]:
        """Requests near the head of the queue whose time has come, best first.

        Requests deferred by ``not_before`` are skipped, not waited on: the scan
        pages past them (up to ``SCAN_LIMIT`` rows) so a delayed request at the
        head never blocks the ones behind it. ``next_due`` is the earliest
        ``not_before`` seen, so the manager can sleep until then.
        """
        seen: set[int] = set()
        ready: list[Candidate] = []
        self.next_due = None
        after: int | None = None
        while len(ready) < WINDOW and len(seen) < SCAN_LIMIT:
            rows = self.broker.peek_many(SPAWN_REQUESTS, WINDOW, after=after)
            for body, mid in rows:
                seen.add(mid)
                cand = self._candidate(body, mid)
                if cand is None:
                    continue
                not_before = cand.request.not_before
                if not_before is not None and not_before > now:
                    self.next_due = min(self.next_due or not_before, not_before)
                    continue
                ready.append(cand)
            if len(rows) < WINDOW:
                break
            after = rows[-1][1]
        if len(self._cache) > CACHE_LIMIT:
            self._cache = {k: v for k, v in self._cache.items() if k in seen}
        ready.sort(key=lambda c: (-c.priority, c.message_id))
        return ready

    def _candidate(self, body: str, mid: int) -> Candidate | None:
        cand = self._cache.get(mid)
        # A retry (weft/runtime/attempt.py) and 'weft task edit' rewrite a request
        # under the same id: a cached parse is good only for the body it came from.
        if cand is None or cand.body != body:
            try:
                cand = parse(body, mid)
            except ValueError as exc:
                self.dead_letter(mid, str(exc))
                return None
            try:
                refusal = self.gate.refusal(cand.spec) if self.gate is not None else None
            except Exception as exc:  # noqa: BLE001 - one request must not end the reader
                self.dead_letter(mid, f"cannot check the request: {type(exc).__name__}: {exc}")
                return None
            if refusal is not None:
                self.dead_letter(mid, refusal.error, reason=refusal.reason)
                return None
            self._cache[mid] = cand
        return cand

    def forget(self, message_id: int) -> None:
        self._cache.pop(message_id, None)

    def dead_letter(self, message_id: int, problem: str, *, reason: str = "invalid_request") -> None:
        """Refuse one queued request: moved, result and event in one transaction."""
        claim = attempt.Claim(SPAWN_REQUESTS, message_id)
        body = self.broker.peek_one(SPAWN_REQUESTS, message_id=message_id)
        ids = attempt.salvage_ids(body[0]) if body is not None else {}
        attempt.dead_letter(self.broker, claim, problem=problem, manager_tid=self.manager_tid,
                            reason=reason, ids=ids)
