"""A function's large result goes from its own process straight into the blob store.

Why: a result used to travel whole as one JSON line (pickled, base64, JSON)
from the task process to the launcher, as one frame on to the manager, and
was parsed, dumped again and hashed into a blob there: four copies, two
processes holding all of it (memory bounded by ``WEFT_MAX_RESULT_MB``, not by
the chunk size), 2.2 s for 50 MB. Now the task process serializes the value
once, into a :class:`ResultSink`: up to about one chunk stays in memory and
travels inline as before; past that the bytes stream into a blob writer
(hashed as they are written, fsynced, renamed into place) and only the
reference ``{"sha256", "size", "encoding"}`` goes up the result pipe. The
launcher and the manager never hold more than that line.

Two sides of one contract:

- :func:`report`, in the task process (:mod:`weft.runtime.child`): the
  outcome line for a returned value, inline or ``{"value_blob": ref}``.
  Over ``WEFT_MAX_RESULT_MB`` it stops writing, removes the partial blob and
  reports ``result_too_large``.
- :func:`admit`, in the process that records the result (the manager, or
  an orphaned launcher): a reported reference is accepted only if its size
  is within the cap and the blob is whole in the store (a ``stat`` or one
  query: its bytes are not read); otherwise the task fails
  (``result_too_large``, or ``result_lost``) and the host carries on.

Durability: the blob is fsynced and renamed (on PostgreSQL: moved and
indexed in the database) before the reference is reported, so a committed
result never refers to a missing blob. A task killed mid-write leaves only a
temporary file or queue, which ``weft tidy`` sweeps (see
:func:`weft.broker.blobs.sweep`); a whole blob whose reference was never
recorded is swept like any unreferenced blob.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from weft.errors import BlobError, InvalidSpec, WeftError
from weft.models import values

if TYPE_CHECKING:
    from weft.broker.blobs import BlobStore, BlobWriter
    from weft.runtime.outcome import Outcome

# Imported by every launcher (through weft.runtime.child), so what only a large
# result or the recording host needs (the blob store, Outcome) is imported when used.

DEFAULT_CHUNK: Final = 1 << 20
DEFAULT_CAP: Final = 1 << 30
ENCODINGS: Final = ("json", "pickle")
_SHA_CHARS = frozenset("0123456789abcdef")


class TooLarge(values.StopWriting):
    def __init__(self, size: int, cap: int) -> None:
        super().__init__(f"the result (over {size / 2**20:.1f} MB) is larger than "
                         f"WEFT_MAX_RESULT_MB ({cap >> 20} MB)")


class ResultSink:
    """Serialized bytes: kept in memory up to ``inline`` bytes, then streamed into a blob.

    The blob writer is opened only when the value outgrows ``inline``, so a
    small result touches no file and no database.
    """

    def __init__(self, open_store: Callable[[], BlobStore], *, inline: int, cap: int) -> None:
        self._open_store = open_store
        self.inline, self.cap = inline, cap
        self.buffer = bytearray()
        self.writer: BlobWriter | None = None
        self.size = 0

    def write(self, data: Any) -> int:
        if not isinstance(data, bytes | bytearray):  # a PickleBuffer (an array's own memory)
            data = memoryview(data).cast("B")
        n = len(data)
        self.size += n
        if self.size > self.cap:
            raise TooLarge(self.size, self.cap)
        if self.writer is None:
            if self.size <= self.inline:
                self.buffer += data
                return n
            self.writer = self._open_store().writer()
            self.writer.write(bytes(self.buffer))
            self.buffer = bytearray()
        self.writer.write(data)
        return n

    def restart(self) -> None:
        self.abort()
        self.buffer, self.size = bytearray(), 0

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None

    def close(self) -> dict[str, Any] | None:
        """The blob's reference, or None when everything fit inline (in :attr:`buffer`)."""
        if self.writer is None:
            return None
        writer, self.writer = self.writer, None
        return writer.close()


def report(value: Any, launch: dict[str, Any]) -> dict[str, Any]:
    """The outcome line for the value a function returned (see :mod:`weft.runtime.child`)."""
    where = launch.get("result_store") or {}
    chunk = int(where.get("chunk") or DEFAULT_CHUNK)
    cap = int(launch.get("max_result") or DEFAULT_CAP)
    stores: list[BlobStore] = []

    def open_store() -> BlobStore:
        stores.append(_store(where))
        return stores[-1]

    pickled = launch.get("serializer") == "pickle" and not values.is_plain(value)
    # base64 makes 4 of 3: an inline pickle must fit one chunk once encoded.
    sink = ResultSink(open_store, inline=chunk * 3 // 4 - 64 if pickled else chunk, cap=cap)
    try:
        if pickled:
            values.dump(value, sink, field="the return value")
        else:
            try:
                sink.write(json.dumps(value, separators=(",", ":")).encode())
            except (TypeError, ValueError) as exc:
                return {"error": f"return value is not JSON-serialisable: {exc}"}
        ref = sink.close()
    except TooLarge as exc:
        sink.abort()
        return {"error": str(exc), "reason": "result_too_large"}
    except InvalidSpec as exc:
        sink.abort()
        return {"error": f"cannot send the result: {exc}"}
    except (WeftError, OSError) as exc:
        sink.abort()
        return {"error": f"cannot store the result: {exc}"}
    finally:
        for store in stores:
            _close(store)
    if ref is not None:
        return {"value_blob": {**ref, "encoding": "pickle" if pickled else "json"}}
    if pickled:
        return {"value": {values.PICKLE_KEY: base64.b64encode(sink.buffer).decode("ascii")}}
    return {"value": value}


def _store(where: dict[str, Any]) -> BlobStore:
    """The project's blob store, opened from the task process (files need no broker)."""
    if not where.get("root"):
        raise BlobError("the task was launched without its project's blob store")
    root = Path(where["root"])
    if where.get("backend", "sqlite") == "sqlite":
        from weft.broker.blobs import FileBlobStore

        return FileBlobStore(root / ".weft" / "blobs")
    from weft import context
    from weft.broker import Broker
    from weft.broker.blobs import QueueBlobStore

    return QueueBlobStore(Broker.open(root, context.resolve(root).settings))


def _close(store: BlobStore) -> None:
    broker = getattr(store, "broker", None)
    if broker is not None:
        broker.close()


def valid_ref(ref: Any) -> bool:
    """Is ``ref`` a result reference as :func:`report` writes it?"""
    return (isinstance(ref, dict) and isinstance(ref.get("sha256"), str)
            and len(ref["sha256"]) == 64 and set(ref["sha256"]) <= _SHA_CHARS
            and type(ref.get("size")) is int and ref["size"] >= 0
            and ref.get("encoding") in ENCODINGS)


def admit(outcome: Outcome, store: Callable[[], BlobStore], cap: int) -> Outcome:
    """``outcome`` when the blob it reports may be recorded as the result (or it
    reports none); else the failure to record instead. Never raises: one task's
    bad report must not end its host."""
    ref = outcome.value_blob
    if ref is None:
        return outcome
    if not valid_ref(ref):
        return _failed("result_lost", "the task reported a malformed result reference")
    if ref["size"] > cap:
        return _failed("result_too_large", f"the result ({ref['size'] / 2**20:.1f} MB) is "
                                           f"larger than WEFT_MAX_RESULT_MB ({cap >> 20} MB)")
    try:
        whole = store().exists(ref["sha256"], ref["size"])
    except (WeftError, OSError) as exc:
        return _failed("result_lost", f"cannot check the result's blob: {exc}")
    if not whole:
        return _failed("result_lost", "the result's blob is not in the blob store")
    return outcome


def _failed(reason: str, error: str) -> Outcome:
    from weft.models import TaskState
    from weft.runtime.outcome import Outcome

    return Outcome(TaskState.FAILED, 1, reason=reason, error=error)
