"""Hand each task its streamed stdin, one chunk at a time, from ``T{tid}.stdin``.

A client that streams a task's stdin (see :mod:`weft.client.stdin`) writes
chunks to ``T{tid}.stdin``. The launcher asks for the next chunk of a task
(``stdin_wanted``) whenever the task's pipe has taken the last one; the
host then reads one message off the queue and sends it on. So the host and
the launcher each hold at most one chunk per task, and a task that reads
slowly slows its client down instead of filling anyone's memory. A chunk
whose bytes are in the blob store is read here (it is at most one chunk).
"""

from __future__ import annotations

import logging
from collections.abc import Container
from typing import Any, Protocol

from weft.broker import Broker
from weft.broker.blobs import blob_store
from weft.codec import loads_object
from weft.errors import WeftError
from weft.models.payload import blob_ref, decode_bytes
from weft.names import task_queue

log = logging.getLogger(__name__)


class StdinSink(Protocol):
    def send(self, op: dict[str, Any]) -> None: ...


class StdinFeed:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.wanted: set[str] = set()

    def want(self, tid: str) -> None:
        self.wanted.add(tid)

    def pump(self, sink: StdinSink, running: Container[str]) -> bool:
        """Send the next chunk to every task that asked and has one queued; True if any."""
        sent = False
        for tid in list(self.wanted):
            if tid not in running:
                self.wanted.discard(tid)
                continue
            taken = self.broker.read_one(task_queue(tid, "stdin"))
            if taken is None:
                continue
            self.wanted.discard(tid)
            sink.send(self._op(tid, taken[0]))
            sent = True
        return sent

    def _op(self, tid: str, body: str) -> dict[str, Any]:
        message = loads_object(body) or {}
        if message.get("eof"):
            return {"op": "stdin", "tid": tid, "eof": True}
        ref = blob_ref(message)
        try:
            data = (blob_store(self.broker).read_all(ref["sha256"]) if ref is not None
                    else decode_bytes(message))
        except WeftError as exc:  # a lost blob: end the input there, loudly in the log
            log.warning("task %s: stdin chunk unreadable, closing its stdin: %s", tid, exc)
            return {"op": "stdin", "tid": tid, "eof": True}
        return {"op": "stdin", "tid": tid, "d": data}
