"""Sending a task its stdin: chunks on ``T{tid}.stdin``, then an EOF message.

A spawn request with ``"stdin": "stream"`` tells the manager that the
task's stdin arrives on ``T{tid}.stdin``; the manager hands each chunk to
the launcher when the task's pipe has room (so neither holds more than a
chunk) and closes the pipe at the EOF message. Each chunk is a message
``{"type": "stdin", "seq", "data"[, "encoding"]}`` (see
:mod:`weft.models.payload`), or ``{"type": "stdin", "seq", "blob": {...}}``
when it is larger than :data:`INLINE` (so the broker file does not grow by
the input's size), and the last is ``{"type": "stdin", "eof": true}``.

The writer keeps at most :data:`AHEAD` chunks queued ahead of the task, so
an endless input (``yes | weft run -- head -1``) costs neither memory nor
disk, and it stops as soon as ``done()`` says the task has ended.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import IO, Any

from weft.broker import Broker
from weft.broker.blobs import blob_store, chunk_bytes
from weft.client.polling import wait_for_change
from weft.models.payload import encode_bytes
from weft.names import task_queue

INLINE = 64 * 1024
AHEAD = 4


def pieces_of(source: bytes | IO[bytes] | int, size: int) -> Iterator[bytes]:
    """``source`` (bytes, a binary file, or a file descriptor) in pieces of at most ``size``."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])
        return
    if isinstance(source, int):
        while piece := os.read(source, size):
            yield piece
        return
    read = getattr(source, "read1", None) or source.read
    while piece := read(size):
        if isinstance(piece, str):
            piece = piece.encode()
        yield piece


def send_stdin(broker: Broker, tid: str, source: bytes | IO[bytes] | int, *,
               done: Callable[[], bool] | None = None) -> int:
    """Write ``source`` to the task's stdin queue, then EOF; return the bytes sent.

    With ``done``, wait (on broker changes) while :data:`AHEAD` chunks are
    still unread, and stop early once ``done()`` is true.
    """
    queue = task_queue(tid, "stdin")
    chunk = chunk_bytes(broker)
    sent = seq = 0
    for piece in pieces_of(source, chunk):
        if done is not None and _wait_for_room(broker, queue, done):
            return sent
        seq += 1
        fields: dict[str, Any] = (encode_bytes(piece) if len(piece) <= INLINE
                                  else {"blob": blob_store(broker).put(piece)})
        broker.write(queue, json.dumps({"v": 1, "type": "stdin", "seq": seq, **fields},
                                       separators=(",", ":")))
        sent += len(piece)
    broker.write(queue, json.dumps({"v": 1, "type": "stdin", "seq": seq + 1, "eof": True}))
    return sent


def _wait_for_room(broker: Broker, queue: str, done: Callable[[], bool]) -> bool:
    """Block while the task has AHEAD chunks unread; True when it has ended instead."""
    version = broker.data_version()
    while broker.count(queue) >= AHEAD:
        if done():
            return True
        version = wait_for_change(broker, version, timeout=0.5)
    return done()
