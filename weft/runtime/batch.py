"""Write what one loop iteration produced in as few broker round trips as possible.

Writes go first (in order, one commit each, except groups written with
:meth:`Batch.atomic`, which commit together), deletes after, so a crash
between the two leaves a duplicate to clean up, never a loss:
a result is on the outbox before its work item leaves ``reserved``, and a
claim (deleted ``last``) outlives its work item, so recovery, which starts
from the claims, always finds what is left to clean.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from weft.broker import Broker
from weft.names import TASKS_LOG

HOST = socket.gethostname()


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


class Batch:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.writes: list[tuple[str, str]] = []
        self.deletes: dict[str, list[int]] = defaultdict(list)
        self.last_deletes: dict[str, list[int]] = defaultdict(list)
        self._groups: list[tuple[int, int]] = []  # [start, end) of writes that go atomically
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
            self._groups.append((start, len(self.writes)))

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
        """Does the pending batch write to ``queue``?"""
        return any(q == queue for q, _ in self.writes)

    def __bool__(self) -> bool:
        return bool(self.writes or self.deletes or self.last_deletes)

    def flush(self) -> None:
        if self.writes:
            writes, groups = self.writes, self._groups
            self.writes, self._groups = [], []
            done = 0
            for start, end in groups:
                if start > done:
                    self.broker.write_many(writes[done:start])
                self.broker.write_atomic(writes[start:end])
                done = end
            if done < len(writes):
                self.broker.write_many(writes[done:])
        for attr in ("deletes", "last_deletes"):
            deletes = getattr(self, attr)
            if deletes:
                setattr(self, attr, defaultdict(list))
                for queue, ids in deletes.items():
                    self.broker.delete(queue, ids)


def my_pid() -> int:
    return os.getpid()
