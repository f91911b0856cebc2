"""The blob store: where payloads too large for one broker message live.

A task's output beyond the chunk size, a large function result and a large
stdin do not travel inside broker messages (simplebroker refuses messages
over 10 MiB, and every byte written to the broker file stays in it until a
vacuum). They are written here, and the message carries a reference:
``{"sha256": ..., "size": ...}``. Blobs are content-addressed and
immutable, so a reference can be checked: every read hashes what it
returns and fails (:class:`~weft.errors.BlobError`) if it does not match.

Two stores behind one interface, chosen by the broker's backend:

- SQLite: files ``.weft/blobs/<sha[:2]>/<sha>``, owner-only, written to a
  temporary name, fsynced and renamed, so a reader never sees half a blob.
- PostgreSQL (hosts share no filesystem): the bytes are chunks in the
  database, one broker queue per blob (``weft.blob.<sha256>``), each chunk
  one base64 message; ``weft.blob.index`` records each blob once it is
  whole (its size and when it was written).

Both stream: :meth:`BlobStore.writer` takes bytes piece by piece and
:meth:`BlobStore.read` yields them piece by piece, so no process needs a
whole blob in memory. Blobs are removed by :func:`sweep` (``weft tidy``),
which keeps every blob a message still refers to.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weft.errors import BlobError

if TYPE_CHECKING:  # not imported at run time: a task process writes files without simplebroker
    from weft.broker.broker import Broker

READ_PIECE = 1 << 20
QUEUE_CHUNK = 512 * 1024  # raw bytes per database chunk: ~700 KB of base64, far under 10 MiB
INDEX = "weft.blob.index"
PREFIX = "weft.blob."
SHA_RE = re.compile(r'"sha256":\s*"([0-9a-f]{64})"')
TMP_PREFIX = f"{PREFIX}tmp."
# A half-written blob (its writer was killed) is swept once it is this old: never one
# still being written, whatever retention ``weft tidy`` was given.
TMP_MIN_AGE = 3600.0


def make_ref(sha256: str, size: int) -> dict[str, Any]:
    return {"sha256": sha256, "size": size}


class BlobWriter(ABC):
    """Takes a blob's bytes piece by piece; :meth:`close` stores it and returns its reference."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        if data:
            self._hash.update(data)
            self.size += len(data)
            self._write(data)

    def close(self) -> dict[str, Any]:
        return self._commit(self._hash.hexdigest())

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def _commit(self, sha256: str) -> dict[str, Any]: ...

    @abstractmethod
    def abort(self) -> None: ...


class BlobStore(ABC):
    """Content-addressed, immutable byte strings."""

    @abstractmethod
    def writer(self) -> BlobWriter: ...

    @abstractmethod
    def _pieces(self, sha256: str) -> Iterator[bytes]: ...

    @abstractmethod
    def delete(self, sha256s: Iterable[str]) -> int: ...

    @abstractmethod
    def entries(self) -> Iterator[tuple[str, int, float]]:
        """(sha256, size, written at) of every whole blob."""

    def put(self, data: bytes | Iterable[bytes]) -> dict[str, Any]:
        writer = self.writer()
        try:
            for piece in [data] if isinstance(data, bytes | bytearray) else data:
                writer.write(bytes(piece))
        except BaseException:
            writer.abort()
            raise
        return writer.close()

    def read(self, sha256: str) -> Iterator[bytes]:
        """Yield the blob's bytes; BlobError if it is missing or does not hash to ``sha256``.

        The check completes with the last piece: a reader that acts on
        pieces before the end must be ready to be told, at the end, that
        they were wrong.
        """
        check = hashlib.sha256()
        for piece in self._pieces(_checked(sha256)):
            check.update(piece)
            yield piece
        if check.hexdigest() != sha256:
            raise BlobError(f"blob {sha256[:12]} is corrupt: its bytes do not match its sha256")

    def read_all(self, sha256: str) -> bytes:
        return b"".join(self.read(sha256))

    def read_bytes(self, sha256: str) -> bytes | bytearray:
        """The whole blob in one buffer, checked against ``sha256`` once (BlobError if not).

        For a reader that needs it whole anyway (a result value): one
        allocation, no joining of pieces.
        """
        data = bytearray()
        for piece in self.read(sha256):
            data += piece
        return data

    @abstractmethod
    def exists(self, sha256: str, size: int) -> bool:
        """Is the whole blob stored, with this size? (Cheap: its bytes are not read.)"""

    @abstractmethod
    def sweep_partial(self, older_than: float) -> int:
        """Remove half-written blobs (a killed writer's) older than ``older_than`` s; how many."""

    def usage(self) -> dict[str, int]:
        count = total = 0
        for _sha, size, _at in self.entries():
            count += 1
            total += size
        return {"blobs": count, "bytes": total}


def _checked(sha256: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
        raise BlobError(f"not a blob reference: {sha256!r}")
    return sha256


# -- files (SQLite projects) -------------------------------------------------
class _FileWriter(BlobWriter):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        tmp = root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.tmp = tmp / f"{os.getpid()}-{secrets.token_hex(8)}"
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def _commit(self, sha256: str) -> dict[str, Any]:
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
        final = self.root / sha256[:2] / sha256
        if not final.parent.is_dir():
            final.parent.mkdir(exist_ok=True, mode=0o700)
            _fsync_dir(self.root)
        os.replace(self.tmp, final)  # same content under the same name: replacing is harmless
        _fsync_dir(final.parent)  # the name is durable before any message refers to it
        return make_ref(sha256, self.size)

    def abort(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def read_bytes(self, sha256: str) -> bytes | bytearray:
        """Read the file in one call (one buffer of its size); hash it once."""
        path = self.root / _checked(sha256)[:2] / sha256
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise BlobError(f"blob {sha256[:12]} is missing (removed by weft tidy?)") from None
        with open(fd, "rb", buffering=0) as fh:
            data = fh.read()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BlobError(f"blob {sha256[:12]} is corrupt: its bytes do not match its sha256")
        return data

    def exists(self, sha256: str, size: int) -> bool:
        try:
            return (self.root / _checked(sha256)[:2] / sha256).stat().st_size == size
        except FileNotFoundError:
            return False

    def sweep_partial(self, older_than: float) -> int:
        cutoff, gone = time.time() - older_than, 0
        tmp = self.root / "tmp"
        for path in tmp.iterdir() if tmp.is_dir() else ():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    gone += 1
            except FileNotFoundError:
                pass
        return gone

    def writer(self) -> BlobWriter:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return _FileWriter(self.root)

    def _pieces(self, sha256: str) -> Iterator[bytes]:
        try:
            fh = open(self.root / sha256[:2] / sha256, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise BlobError(f"blob {sha256[:12]} is missing (removed by weft tidy?)") from None
        with fh:
            while piece := fh.read(READ_PIECE):
                yield piece

    def delete(self, sha256s: Iterable[str]) -> int:
        gone = 0
        for sha in sha256s:
            try:
                (self.root / sha[:2] / sha).unlink()
                gone += 1
            except FileNotFoundError:
                pass
        return gone

    def entries(self) -> Iterator[tuple[str, int, float]]:
        if not self.root.is_dir():
            return
        for sub in self.root.iterdir():
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for path in sub.iterdir():
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                yield path.name, st.st_size, st.st_mtime


# -- chunks in the database (PostgreSQL projects) ------------------------------
class _QueueWriter(BlobWriter):
    def __init__(self, broker: Broker) -> None:
        super().__init__()
        self.broker = broker
        # The time in the name lets the sweep find what a killed writer left.
        self.queue = f"{TMP_PREFIX}{int(time.time())}.{secrets.token_hex(8)}"
        self.pending = bytearray()

    def _write(self, data: bytes) -> None:
        self.pending += data
        while len(self.pending) >= QUEUE_CHUNK:
            self._send(bytes(self.pending[:QUEUE_CHUNK]))
            del self.pending[:QUEUE_CHUNK]

    def _send(self, piece: bytes) -> None:
        self.broker.write(self.queue, base64.b64encode(piece).decode("ascii"))

    def _commit(self, sha256: str) -> dict[str, Any]:
        if self.pending:
            self._send(bytes(self.pending))
            self.pending.clear()
        final = PREFIX + sha256
        if _indexed(self.broker, sha256):
            self.broker.delete_queue(self.queue)  # the same bytes are already stored
        else:
            self.broker.delete_queue(final)  # a half-moved copy from a crash, if any
            self.broker.move_all(self.queue, final)
            self.broker.write(INDEX, json.dumps({"sha256": sha256, "size": self.size,
                                                 "at": time.time()}))
        return make_ref(sha256, self.size)

    def abort(self) -> None:
        self.broker.delete_queue(self.queue)


def _indexed(broker: Broker, sha256: str) -> bool:
    return bool(broker.find_ids(INDEX, f'"sha256": "{sha256}"', limit=1))


class QueueBlobStore(BlobStore):
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def writer(self) -> BlobWriter:
        return _QueueWriter(self.broker)

    def _pieces(self, sha256: str) -> Iterator[bytes]:
        if not _indexed(self.broker, sha256):
            raise BlobError(f"blob {sha256[:12]} is missing (removed by weft tidy?)")
        cursor: int | None = None
        while page := self.broker.peek_many(PREFIX + sha256, 8, after=cursor):
            for body, mid in page:
                cursor = mid
                yield base64.b64decode(body)

    def exists(self, sha256: str, size: int) -> bool:
        """Whole means indexed: the index is written after every chunk, with the size."""
        ids = self.broker.find_ids(INDEX, f'"sha256": "{_checked(sha256)}"', limit=1)
        found = self.broker.peek_one(INDEX, message_id=ids[0]) if ids else None
        try:
            return found is not None and int(json.loads(found[0])["size"]) == size
        except (ValueError, KeyError, TypeError):
            return False

    def sweep_partial(self, older_than: float) -> int:
        cutoff, gone = time.time() - older_than, 0
        for queue, _pending, _total in self.broker.queue_stats():
            stamp = queue[len(TMP_PREFIX):].split(".", 1)[0]
            if queue.startswith(TMP_PREFIX) and stamp.isdigit() and int(stamp) < cutoff:
                self.broker.delete_queue(queue)
                gone += 1
        return gone

    def delete(self, sha256s: Iterable[str]) -> int:
        gone = 0
        for sha in sha256s:
            ids = self.broker.find_ids(INDEX, f'"sha256": "{sha}"')
            if ids:
                self.broker.delete(INDEX, ids)
                gone += 1
            self.broker.delete_queue(PREFIX + sha)
        return gone

    def entries(self) -> Iterator[tuple[str, int, float]]:
        seen = set()
        for body, _mid in self.broker.peek_all(INDEX):
            try:
                rec = json.loads(body)
                sha, size, at = rec["sha256"], int(rec["size"]), float(rec["at"])
            except (ValueError, KeyError, TypeError):
                continue
            if sha not in seen:
                seen.add(sha)
                yield sha, size, at


def chunk_bytes(broker: Broker) -> int:
    """The largest payload one message carries (``WEFT_CHUNK_KB``)."""
    return (broker.settings.chunk_kb if broker.settings else 1024) * 1024


def max_result_bytes(broker: Broker) -> int:
    """The largest result a task may return (``WEFT_MAX_RESULT_MB``)."""
    return (broker.settings.max_result_mb if broker.settings else 1024) << 20


def blob_store(broker: Broker) -> BlobStore:
    """The store of ``broker``'s project: files beside a SQLite broker, chunks in Postgres."""
    if broker.backend == "sqlite":
        if broker.root is None:
            raise BlobError("this broker connection does not know its project directory")
        return FileBlobStore(broker.root / ".weft" / "blobs")
    return QueueBlobStore(broker)


def referenced(broker: Broker) -> set[str]:
    """Every sha256 a message in any queue (other than the store's own) still refers to."""
    shas: set[str] = set()
    for queue, _pending, _total in broker.queue_stats():
        if queue.startswith(PREFIX):
            continue
        for body, _mid in broker.peek_all(queue):
            if '"sha256"' in body:
                shas.update(SHA_RE.findall(body))
    return shas


def sweep(broker: Broker, *, older_than: float, dry_run: bool = False) -> dict[str, int]:
    """Remove blobs no message refers to that were written more than ``older_than`` s ago.

    The age guard keeps a blob whose reference is being written right now.
    Half-written blobs (a task killed while it wrote its result) go too,
    once they are ``TMP_MIN_AGE`` old.
    """
    store = blob_store(broker)
    keep = referenced(broker)
    cutoff = time.time() - older_than
    doomed = [(sha, size) for sha, size, at in store.entries() if sha not in keep and at < cutoff]
    if not dry_run:
        store.delete(sha for sha, _ in doomed)
        store.sweep_partial(max(older_than, TMP_MIN_AGE))
    return {"blobs_dropped": len(doomed), "blob_bytes_dropped": sum(s for _, s in doomed)}
