"""Write what one loop iteration produced in as few broker round trips as possible.

A flush is ONE broker transaction (:mod:`weft.broker.commit`): the writes
in order, then the deletes. Inside it, groups written with
:meth:`Batch.fenced` take effect together *with* the end of one exact claim,
or not at all when the claim is gone (then the group's ``on_lost`` is called
after the commit; see :mod:`weft.runtime.attempt`); the rest of the step
commits either way. One transaction per step instead of one per message is
most of a busy manager's broker cost (docs/performance.md).

A write the broker could never hold (over its message size limit) is
dropped with a warning instead of failing the whole batch: one message
must not end the process that writes it.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from weft.broker import Broker, commit
from weft.broker.broker import MessageTooLarge
from weft.names import TASKS_LOG

HOST = socket.gethostname()
log = logging.getLogger("weft.batch")


@dataclass
class _Group:
    """Writes ``[start, end)`` that commit together; fenced when ``claim`` is set."""

    start: int
    end: int
    claim: tuple[str, int] | None = None
    deletes: list[tuple[str, int]] = field(default_factory=list)
    move_to: str | None = None
    body: str | None = None
    on_lost: Callable[[], None] | None = None
    keep: bool = False


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


class Batch:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.writes: list[tuple[str, str]] = []
        self.deletes: dict[str, list[int]] = defaultdict(list)
        self.last_deletes: dict[str, list[int]] = defaultdict(list)
        self._groups: list[_Group] = []
        # Observers of every event this process writes (metrics, log lines):
        # called inline, so they must be cheap and must not raise.
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def write(self, queue: str, body: Any) -> None:
        self.writes.append((queue, body if isinstance(body, str) else dumps(body)))

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """The writes made inside are committed together (a retry and its event)."""
        start = len(self.writes)
        yield
        if len(self.writes) - start > 1:
            self._groups.append(_Group(start, len(self.writes)))

    @contextmanager
    def fenced(self, queue: str, message_id: int, *, on_lost: Callable[[], None],
               deletes: list[tuple[str, int]] | None = None, move_to: str | None = None,
               body: str | None = None, keep: bool = False) -> Iterator[None]:
        """The writes made inside commit with the removal (or move) of claim
        ``message_id`` from ``queue``, or not at all: then ``on_lost`` runs.
        ``keep``: the claim is only checked, and stays (an attempt's start)."""
        start = len(self.writes)
        yield
        self._groups.append(_Group(start, len(self.writes), (queue, message_id),
                                   list(deletes or ()), move_to, body, on_lost, keep))

    def delete(self, queue: str, message_id: int, *, last: bool = False) -> None:
        """``last``: after every other delete (a claim goes only once its work item has)."""
        (self.last_deletes if last else self.deletes)[queue].append(message_id)

    def event(self, event: str, tid: str, status: str, **fields: Any) -> None:
        """Append one ``weft.tasks.log`` event; ``None`` fields are dropped."""
        record = {"v": 1, "event": event, "tid": tid, "status": status, "ts": time.time()}
        record.setdefault("host", HOST)
        for key, value in fields.items():
            if value is not None:
                record[key] = value
        self.writes.append((TASKS_LOG, dumps(record)))
        for listener in self.listeners:
            listener(record)

    def writes_to(self, queue: str) -> bool:
        """Does the pending batch write (or move a claim) to ``queue``?"""
        return (any(q == queue for q, _ in self.writes)
                or any(g.move_to == queue for g in self._groups))

    def __bool__(self) -> bool:
        return bool(self.writes or self.deletes or self.last_deletes or self._groups)

    def flush(self) -> None:
        """Commit everything pending in one broker transaction (see :mod:`weft.broker.commit`)."""
        units, fences, end, _ = self._plan(len(self.writes))
        self.writes, self._groups = self.writes[end:], []
        self.deletes, self.last_deletes = defaultdict(list), defaultdict(list)
        if units:
            self._tell_lost(self._commit(units, fences))
        if self.writes and not self._groups:
            self.flush()  # what a lost claim's on_lost wrote (its claim_lost event)

    def _plan(self, limit: int) -> tuple[list[commit.Unit], list[_Group], int, int]:
        """The pending writes up to the first group boundary at or past ``limit``, as
        broker units (the deletes too, when every write is in): (units, the fenced
        groups in order, how many writes and how many groups they cover)."""
        units: list[commit.Unit] = []
        fences: list[_Group] = []
        groups = iter(self._groups)  # in start order, never overlapping
        group = next(groups, None)
        done = taken = 0
        plain: list[tuple[str, str]] = []
        while (done < len(self.writes) and done < limit) or (group is not None
                                                             and group.start == done):
            if group is None or group.start != done:
                if self._fits(self.writes[done]):
                    plain.append(self.writes[done])
                done += 1
                continue
            fits = [w for w in self.writes[group.start:group.end] if self._fits(w)]
            if group.claim is None:
                plain.extend(fits)
            else:
                if plain:
                    units.append(commit.Writes(plain))
                    plain = []
                units.append(commit.Fence(group.claim[0], group.claim[1], fits, group.deletes,
                                          group.move_to, group.body, group.keep))
                fences.append(group)
            done = group.end
            taken += 1
            group = next(groups, None)
        if plain:
            units.append(commit.Writes(plain))
        if done >= len(self.writes) and group is None:
            for deletes in (self.deletes, self.last_deletes):
                units.extend(commit.Deletes(q, ids) for q, ids in deletes.items() if ids)
        return units, fences, done, taken

    def _commit(self, units: list[commit.Unit], fences: list[_Group]) -> list[_Group]:
        """One transaction; returns the fenced groups whose claim was gone."""
        held, _ids = self.broker.commit(units)
        return [group for group, ok in zip(fences, held, strict=True) if not ok]

    @staticmethod
    def _tell_lost(lost: list[_Group]) -> None:
        """After the commit is accounted for: ``on_lost`` may add writes (its
        claim_lost event), flushed next."""
        for group in lost:
            if group.on_lost is not None:
                group.on_lost()

    def _fits(self, write: tuple[str, str]) -> bool:
        queue, body = write
        if len(body) * 4 <= self.broker.max_message_size:
            return True
        try:
            self.broker.check_size(body)
        except MessageTooLarge as exc:
            log.warning("dropped a message for %s: %s", queue, exc)
            return False
        return True
