"""Write what one loop iteration produced in as few broker round trips as possible.

Writes go first, in order, one commit each, except groups: those written
with :meth:`Batch.atomic` commit together, and those written with
:meth:`Batch.fenced` commit together *with* the end of one exact claim, or
not at all when the claim is gone (then the group's ``on_lost`` is called;
see :mod:`weft.runtime.attempt`). Plain deletes go after the writes, so a
crash between the two leaves a duplicate to clean up, never a loss.

A write the broker could never hold (over its message size limit) is
dropped with a warning instead of failing the whole batch: one message
must not end the process that writes it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from weft.broker import Broker
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
        if self.writes or self._groups:
            writes, groups = self.writes, self._groups
            self.writes, self._groups = [], []
            done = 0
            for group in groups:
                if group.start > done:
                    self._plain(writes[done:group.start])
                self._group(group, writes[group.start:group.end])
                done = group.end
            if done < len(writes):
                self._plain(writes[done:])
        for attr in ("deletes", "last_deletes"):
            deletes = getattr(self, attr)
            if deletes:
                setattr(self, attr, defaultdict(list))
                for queue, ids in deletes.items():
                    self.broker.delete(queue, ids)
        if self.writes and not self._groups:
            self.flush()  # what a lost claim's on_lost wrote (its claim_lost event)


    def _plain(self, writes: list[tuple[str, str]]) -> None:
        fits = [w for w in writes if self._fits(w)]
        if fits:
            self.broker.write_many(fits)

    def _group(self, group: _Group, writes: list[tuple[str, str]]) -> None:
        if group.claim is None:
            self.broker.write_atomic([w for w in writes if self._fits(w)])
            return
        queue, message_id = group.claim
        done = self.broker.settle_claim(queue, message_id, writes=[w for w in writes
                                                                   if self._fits(w)],
                                        deletes=group.deletes, move_to=group.move_to,
                                        body=group.body, keep=group.keep)
        if not done and group.on_lost is not None:
            group.on_lost()  # may add writes (its claim_lost event): flushed next time

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


def my_pid() -> int:
    return os.getpid()
