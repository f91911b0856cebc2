"""Reading a task's payloads back: output chunks and result values, inline or in blobs.

Outbox messages carry a task's bytes inline (UTF-8 text, or base64 with
``"encoding": "base64"``) or as a reference into the blob store (see
:mod:`weft.models.payload` and :mod:`weft.broker.blobs`). Everything here
streams: one chunk (at most the chunk size) is in memory at a time, so a
reader of a 1 GB output stays small. :class:`TaskOutput` is a task's whole
output, read on demand, never held.
"""

from __future__ import annotations

import base64
import codecs
import json
from collections.abc import Callable, Iterator
from typing import IO, Any

from weft.broker import Broker
from weft.codec import loads_object
from weft.models.payload import blob_ref, decode_bytes
from weft.names import task_queue

PAGE = 200
KEEP = 1 << 20  # a Result holds an output up to this size (and without blobs) itself


def chunk_pieces(broker: Broker, message: dict[str, Any]) -> Iterator[bytes]:
    """The bytes of one stream message, piece by piece (BlobError if its blob is bad)."""
    ref = blob_ref(message)
    if ref is None:
        yield decode_bytes(message)
    else:
        from weft.broker.blobs import blob_store

        yield from blob_store(broker).read(ref["sha256"])


def chunk_bytes(broker: Broker, message: dict[str, Any]) -> bytes:
    return b"".join(chunk_pieces(broker, message))


def result_value(broker: Broker, message: dict[str, Any]) -> Any:
    """A result message's ``value`` as it travelled, read from the blob store when it is there.

    A blob of JSON text is parsed; a blob of pickle (``"encoding": "pickle"``,
    written by the task process itself) is read into one buffer, its sha256
    checked once, and returned as :class:`~weft.models.values.RawPickle` for
    :func:`~weft.models.values.decode` to load: no base64, no JSON.
    """
    ref = message.get("value_blob")
    if not isinstance(ref, dict) or not isinstance(ref.get("sha256"), str):
        return message.get("value")
    from weft.broker.blobs import blob_store

    data = blob_store(broker).read_bytes(ref["sha256"])
    if ref.get("encoding") == "pickle":
        from weft.models.values import RawPickle

        return RawPickle(data)
    return json.loads(data)


def wire_reader(broker: Broker, message: dict[str, Any]) -> Callable[[], Any] | None:
    """For a value pickled in a blob: how to get it again as the JSON envelope a
    message would carry (``weft result --json``), read only when asked; else None."""
    ref = message.get("value_blob")
    if not isinstance(ref, dict) or ref.get("encoding") != "pickle":
        return None
    return lambda: result_value(broker, message).envelope()


class TaskOutput:
    """One attempt's stdout or stderr (or both, in order), read from the outbox when asked.

    :meth:`keep` reads a small output (inline only, at most ``limit`` bytes)
    once, so a Result keeps it after its client is closed (or its project
    removed); a large one is read from the outbox and blob store each time.
    """

    def __init__(self, broker: Broker, tid: str, attempt: int) -> None:
        self.broker = broker
        self.tid = tid
        self.attempt = attempt
        self.kept: list[tuple[str, bytes]] | None = None

    def keep(self, limit: int) -> None:
        kept: list[tuple[str, bytes]] = []
        total = 0
        for message in self.messages():
            if blob_ref(message) is not None:
                return
            data = decode_bytes(message)
            total += len(data)
            if total > limit:
                return
            kept.append((str(message.get("stream")), data))
        self.kept = kept

    def messages(self, stream: str | None = None) -> Iterator[dict[str, Any]]:
        cursor: int | None = None
        queue = task_queue(self.tid, "outbox")
        while page := self.broker.peek_many(queue, PAGE, after=cursor):
            for body, mid in page:
                cursor = mid
                message = loads_object(body)
                if (message is not None and message.get("type") == "stream"
                        and int(message.get("attempt") or 1) == self.attempt
                        and (stream is None or message.get("stream") == stream)):
                    yield message

    def pieces(self, stream: str | None = None) -> Iterator[tuple[str, bytes]]:
        if self.kept is not None:
            yield from ((s, d) for s, d in self.kept if stream is None or s == stream)
            return
        for message in self.messages(stream):
            for piece in chunk_pieces(self.broker, message):
                yield str(message.get("stream")), piece

    def read(self, stream: str) -> bytes:
        return b"".join(piece for _, piece in self.pieces(stream))


def write_json_string(pieces: Iterator[bytes], again: Iterator[bytes], out: IO[str]) -> str:
    """Write a JSON string holding the bytes ``pieces`` yield; return its encoding.

    Two passes over the same bytes (``again`` yields them a second time), so
    memory stays one piece: the first finds whether they are UTF-8, the
    second writes them as text or base64.
    """
    check = codecs.getincrementaldecoder("utf-8")("strict")
    utf8 = True
    try:
        for piece in pieces:
            check.decode(piece)
        check.decode(b"", final=True)
    except UnicodeDecodeError:
        utf8 = False
    out.write('"')
    if utf8:
        text = codecs.getincrementaldecoder("utf-8")("strict")
        for piece in again:
            out.write(json.dumps(text.decode(piece))[1:-1])
    else:
        carry = b""
        for piece in again:
            data = carry + piece
            cut = len(data) - len(data) % 3
            out.write(base64.b64encode(data[:cut]).decode("ascii"))
            carry = data[cut:]
        out.write(base64.b64encode(carry).decode("ascii"))
    out.write('"')
    return "utf-8" if utf8 else "base64"
