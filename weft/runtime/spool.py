"""Turn a task's output bytes into outbox message fields, inline or as blobs.

The launcher hands the host a task's output as it reads it (pieces of at
most 64 KiB, stdout and stderr in the order read). The first ``chunk``
bytes of a task's output travel inline (``data``, UTF-8 text or base64,
see :mod:`weft.models.payload`), so a short task's output is in the broker
with no extra file. Past that, output is gathered into blobs of up to
``chunk`` bytes each (see :mod:`weft.broker.blobs`) and the message
carries only the reference: the broker does not grow with a task's output
and no message exceeds the chunk size.

A pending blob is written when it is full, when the other stream speaks
(order across the two streams is kept), when the task has been quiet for
``linger`` seconds (or it has waited ten times that)
seconds, and when the task ends; so memory per task stays under one chunk.
A remainder smaller than :data:`SMALL` is written inline instead, so a task
that trickles output does not leave a small file per pause; a message still
never exceeds the chunk size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from weft.broker.blobs import BlobStore
from weft.errors import WeftError
from weft.models.payload import encode_bytes

LINGER = 0.5
SMALL = 64 * 1024  # a pending remainder under this is flushed inline, not as a blob

Piece = tuple[str, dict[str, Any]]  # (stream, message fields)


class OutputSpool:
    def __init__(self, store: Callable[[], BlobStore], *, chunk: int,
                 linger: float = LINGER) -> None:
        self._store = store
        self.chunk = chunk
        self.linger = linger
        self.inline_left = chunk
        self.stream: str | None = None
        self.pending = bytearray()
        self.pending_since = 0.0
        self.last_add = 0.0

    def add(self, stream: str, data: bytes) -> list[Piece]:
        """The messages ``data`` (just read from ``stream``) completes, in order."""
        out: list[Piece] = []
        if self.pending and stream != self.stream:
            out += self.flush()
        if not self.pending and len(data) <= self.inline_left:
            self.inline_left -= len(data)
            return [*out, (stream, encode_bytes(data))]
        if not self.pending:
            self.pending_since = time.monotonic()
        self.stream = stream
        self.pending += data
        now = time.monotonic()
        while len(self.pending) >= self.chunk:
            out.append((stream, self._blob(bytes(self.pending[: self.chunk]))))
            del self.pending[: self.chunk]
            self.pending_since = now  # what is left starts a new blob
        self.last_add = now
        if self.stale(now):
            out += self.flush()
        return out

    def stale(self, now: float) -> bool:
        """Should pending output be written now, unfilled? When the task has been quiet for
        ``linger`` (a follower should see it), or it has waited ten times that
        (a slow trickle). The host asks on every loop; a busy stream fills blobs."""
        return bool(self.pending) and (now - self.last_add >= self.linger
                                       or now - self.pending_since >= 10 * self.linger)

    def flush(self) -> list[Piece]:
        """Whatever is pending, as one message (at the task's end, a stream switch, or
        after ``linger``). A small remainder travels inline: a task that trickles
        output would otherwise leave a file per pause."""
        if not self.pending or self.stream is None:
            return []
        data = bytes(self.pending)
        self.pending.clear()
        return [(self.stream, encode_bytes(data) if len(data) < SMALL else self._blob(data))]

    def _blob(self, data: bytes) -> dict[str, Any]:
        try:
            return {"blob": self._store().put(data)}
        except (WeftError, OSError):
            # The store failed (disk full, say): a chunk still fits one message.
            return encode_bytes(data)


def value_fields(value: Any, store: Callable[[], BlobStore], *, chunk: int) -> dict[str, Any]:
    """A result's ``value`` for the outbox: inline, or (encoded as JSON) in a blob.

    Whatever the value holds (plain JSON, or a pickle some serializer put in
    it), a value whose JSON is over ``chunk`` bytes travels as
    ``"value_blob": {"sha256", "size", "encoding": "json"}`` with ``value`` null.
    """
    if value is None or isinstance(value, bool | int | float):
        return {"value": value}
    text = json.dumps(value, separators=(",", ":"), default=str).encode()
    if len(text) <= chunk:
        return {"value": value}
    return {"value": None, "value_blob": {**store().put(text), "encoding": "json"}}
