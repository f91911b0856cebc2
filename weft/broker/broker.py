"""The one place weft talks to simplebroker.

A :class:`Broker` holds one process-shared session and one long-lived core
handle, because simplebroker's per-call ``Queue`` wrappers cost two to three
times the SQL they run (see docs/performance.md). Every hand-off weft makes
is a ``move`` that keeps the message id; nothing is read and re-written.

Broker objects refuse to work after ``fork()``: each process opens its own.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import stat
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar, cast

from simplebroker import BrokerSession, resolve_config
from simplebroker._constants import BrokerError as _SBError

from weft.broker import commit, faults, postgres
from weft.broker.opstats import STATS, watch_lock_retries
from weft.broker.postgres import ChangeFeed, redact
from weft.errors import BrokerError
from weft.settings import Settings

T = TypeVar("T")
Message = tuple[str, int]

PAGE = 500
# simplebroker checks whether to vacuum claimed rows every 100 writes of a
# connection, by counting every row of the broker: 13 ms at 20,000 queued
# requests, a fifth of a busy manager's time with a deep queue. weft claims
# rarely (it moves and deletes), so checking every 5,000 writes keeps
# claimed rows bounded and dispatch cost flat with depth (docs/performance.md).
_VACUUM_CHECK = {"WEFT_AUTO_VACUUM_INTERVAL": 5000}
_OPEN: weakref.WeakSet[Broker] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Close brokers nobody closed, and the sessions of brokers collected unclosed.

    A session left open holds an operation lease, and simplebroker's own exit
    handler (which runs after this one) waits up to 5 s for it: every short
    command that dropped its client without closing it took 5.3 s.
    """
    for broker in list(_OPEN):
        try:
            broker.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
    with _SHARED_LOCK:
        leftovers = [(key, shared) for key, shared in _SHARED.items() if key[0] == os.getpid()]
        for key, _shared in leftovers:
            _SHARED.pop(key, None)
    for _key, shared in leftovers:
        try:
            shared.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass


def _bound_lock_waits(seconds: float) -> None:
    """How long simplebroker keeps retrying an operation that finds the file locked.

    The library retries locked operations for up to 30 s whatever the SQLite
    busy timeout says; there is no config knob, so weft sets the module-level
    bounds (read at call time) from ``WEFT_LOCK_TIMEOUT``.
    """
    from simplebroker import _timestamp, db

    db.OPERATION_RETRY_MAX_ELAPSED = seconds
    _timestamp.TS_RETRY_MAX_ELAPSED = seconds


class _Shared:
    """One session and one open core per (process, target), shared by every Broker.

    simplebroker refuses to close a session while the same thread holds
    another open connection context on the same target, so two Broker
    objects in one process (a client and an in-process manager) must share.
    """

    def __init__(self, target: Any, config: Any, changes: ChangeFeed | None = None) -> None:
        self.changes = changes
        try:
            self.session = BrokerSession.connect(target, config=config)
            self.cm = self.session.connection()
            self.core = self.cm.__enter__()
            watch_lock_retries(self.core)
        except BaseException:
            if changes is not None:
                changes.close()
            raise
        self.users = 0
        self.lock = threading.RLock()

    def close(self) -> None:
        try:
            self.cm.__exit__(None, None, None)
        finally:
            self.session.close()
            if self.changes is not None:
                self.changes.close()


_SHARED: dict[tuple[int, str], _Shared] = {}
_SHARED_LOCK = threading.Lock()


class Broker:
    """A connection to one weft broker (a SQLite file or a Postgres schema)."""

    def __init__(self, target: Any, *, config: Any, description: str,
                 connect: Callable[[], tuple[Any, ChangeFeed | None]] | None = None) -> None:
        """Share the process's session on ``description``, or open it.

        ``connect`` (Postgres) checks the server and returns (target, change
        feed) only when a session must be opened, so sharing costs no probe.
        """
        self.description = description
        self._pid = os.getpid()
        self._key = (self._pid, description)
        try:
            with _SHARED_LOCK:
                shared = _SHARED.get(self._key)
                if shared is None:
                    changes = None
                    if connect is not None:
                        target, changes = connect()
                    shared = _SHARED[self._key] = _Shared(target, config, changes)
                shared.users += 1
        except (sqlite3.Error, _SBError, OSError, RuntimeError, ValueError) as exc:
            raise faults.as_broker_error(exc, description, may_open=not _OPEN) from None
        self._shared = shared
        self._core = shared.core
        self._lock = shared.lock
        self.backend = shared.session.backend_name
        self.max_message_size = int(config["MAX_MESSAGE_SIZE"])
        self._closed = False
        self.root: Path | None = None
        self.settings: Settings | None = None
        _OPEN.add(self)

    # -- construction -----------------------------------------------------
    @classmethod
    def open(cls, root: Path, settings: Settings) -> Broker:
        if settings.broker_backend == "postgres":
            broker = cls._open_postgres(settings)
            broker.root, broker.settings = root, settings
            return broker
        path = root / ".weft" / "broker.db"
        _bound_lock_waits(settings.lock_timeout)
        config = resolve_config(
            "WEFT",
            env={},
            override={
                "WEFT_SYNC_MODE": settings.sync_mode,
                "WEFT_BUSY_TIMEOUT": settings.busy_timeout_ms,
                "WEFT_CACHE_MB": settings.cache_mb,
                **_VACUUM_CHECK,
            },
        )
        fresh = not path.exists()
        faults.refuse_unusable(path, may_open=not _OPEN)
        old_umask = os.umask(0o077) if fresh else None
        try:
            broker = cls(str(path), config=config, description=str(path))
        finally:
            if old_umask is not None:
                os.umask(old_umask)
        if fresh:
            for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                if candidate.exists():
                    os.chmod(candidate, stat.S_IRUSR | stat.S_IWUSR)
        broker.root, broker.settings = root, settings  # where its blob store lives (weft.broker.blobs)
        return broker

    @classmethod
    def _open_postgres(cls, settings: Settings) -> Broker:
        dsn, schema = settings.broker_target, settings.broker_schema

        def connect() -> tuple[Any, ChangeFeed]:
            target, probe = postgres.target(dsn, schema)
            return target, ChangeFeed(str(dsn), schema, probe)

        config = resolve_config("WEFT", env={}, override=dict(_VACUUM_CHECK))
        # The key holds the DSN so two projects in one process never share a session.
        return cls(None, config=config, description=f"postgres schema {schema} at {redact(dsn)}",
                   connect=connect)

    def _call(self, fn: Callable[[], T], op: str = "other") -> T:
        """Run ``fn`` under the connection lock, timed as ``op`` (weft.broker.opstats)."""
        if os.getpid() != self._pid:
            raise BrokerError("a broker connection was carried across fork; open a new one")
        try:
            with self._lock:
                start, retries = perf_counter(), STATS.lock_retries
                out = fn()
                STATS.observe(op, perf_counter() - start, retries)
                return out
        except (sqlite3.Error, _SBError, OSError) as exc:
            raise faults.as_broker_error(exc, self.description, may_open=not _OPEN) from None

    def _look(self, fn: Callable[[], T]) -> T:
        """A read: on Postgres, tried once more when it fails.

        The pooled connection of a long-lived process dies with a server
        restart and the first call after it fails while the pool replaces
        it. Reads change nothing, so one more try is safe; writes and moves
        are never repeated here (their first try may have committed).
        """
        try:
            return self._call(fn, "read")
        except BrokerError:
            if self.backend != "postgres":
                raise
            return self._call(fn, "read")

    # -- identity ---------------------------------------------------------
    def generate_id(self) -> int:
        return self._call(self._core.generate_timestamp, "id")

    # -- writing ----------------------------------------------------------
    def write(self, queue: str, body: str) -> int:
        return self._call(lambda: self._core.write(queue, body), "write")

    def write_many(self, records: list[tuple[str, str]]) -> list[int]:
        """Write several messages, in order, holding the connection lock once.

        One transaction per message (each may survive a crash alone). weft's
        own paths write a step in one transaction instead (:meth:`commit`);
        this fills queues in tests and benchmarks.
        """
        if not records:
            return []
        core = self._core

        def run() -> list[int]:
            return [core.write(queue, body) for queue, body in records]

        return self._call(run, "write")

    def write_atomic(self, records: list[tuple[str, str]]) -> list[int]:
        """Write several messages in ONE transaction: all of them or none survive a crash."""
        if not records:
            return []
        for _queue, text in records:
            self.check_size(text)
        return self.commit([commit.Writes(records)])[1]

    def commit(self, units: Sequence[commit.Unit],
               op: str | None = None) -> tuple[list[bool], list[int]]:
        """Writes, fenced settles and deletes in ONE transaction, ids drawn inside it.

        Returns whether each :class:`~weft.broker.commit.Fence` held, in order,
        and the ids of the writes committed (see :mod:`weft.broker.commit`).
        Sizes are the caller's to check. ``op`` names it in weft.broker.opstats
        (by default ``settle`` when it settles a claim, else ``write``).
        """
        if not units:
            return [], []
        if op is None:
            op = "settle" if any(isinstance(u, commit.Fence) for u in units) else "write"
        return self._call(lambda: commit.run(self._core, self.backend, units), op)

    def settle_claim(self, queue: str, message_id: int, *, writes: Sequence[tuple[str, str]] = (),
                     deletes: Sequence[tuple[str, int]] = (), move_to: str | None = None,
                     body: str | None = None, keep: bool = False,
                     ids: Sequence[int] | None = None) -> bool:
        """The fenced operation: act on one exact claim, or do nothing and say so.

        In ONE transaction: remove message ``message_id`` from ``queue`` (or,
        with ``move_to``, move it there keeping its id, its body replaced by
        ``body`` if given), write ``writes`` and delete ``deletes``. If the
        claim is no longer in ``queue`` (someone else took it), nothing at all
        is written and the answer is False. Used for every settle, recovery,
        dead-letter and cancel (see :mod:`weft.runtime.attempt`). With ``keep``
        the claim is only checked (and locked) and stays where it is: a write
        made only while the attempt is still this owner's (its start). ``ids``
        (from :meth:`generate_id`) gives the writes their ids, for a group whose
        parts name each other (a job's child and the record of it).
        """
        for _queue, text in writes:
            self.check_size(text)
        if body is not None:
            self.check_size(body)
        fence = commit.Fence(queue, message_id, tuple(writes), tuple(deletes), move_to, body, keep,
                             tuple(ids) if ids is not None else None)
        return self.commit([fence])[0][0]

    def check_size(self, body: str) -> None:
        """Raise MessageTooLarge for a body the broker would refuse."""
        size = len(body.encode("utf-8", "surrogatepass"))
        if size > self.max_message_size:
            STATS.oversize += 1
            raise MessageTooLarge(size, self.max_message_size)

    def insert_atomic(self, records: list[tuple[str, str, int]]) -> None:
        """Insert (queue, body, id) rows in ONE transaction, ids from :meth:`generate_id`.

        For rows that must keep an id they already have (``weft task edit``
        puts a request back under its TID): all of them or none survive a crash.
        """
        if records:
            self._call(lambda: self._core.insert_messages(records), "write")

    def insert_drawn(self, count: int, build: Callable[[list[int]], Sequence[tuple[str, str, int]]]
                     ) -> list[tuple[str, str, int]]:
        """``count`` ids drawn and the (queue, body, id) rows ``build`` makes of them
        inserted, in ONE transaction (see :func:`weft.broker.commit.insert_drawn`)."""
        def checked(ids: list[int]) -> Sequence[tuple[str, str, int]]:
            rows = build(ids)
            for _queue, text, _mid in rows:
                self.check_size(text)
            return rows

        return self._call(lambda: commit.insert_drawn(self._core, self.backend, count, checked),
                          "write")

    # -- moving and deleting ---------------------------------------------
    def move_one(
        self,
        src: str,
        dst: str,
        *,
        message_id: int | None = None,
        require_unclaimed: bool = True,
    ) -> Message | None:
        return cast("Message | None", self._call(
            lambda: self._core.move_one(
                src,
                dst,
                exact_timestamp=message_id,
                require_unclaimed=require_unclaimed,
                with_timestamps=True,
            ), "move"
        ))

    def move_all(self, src: str, dst: str) -> int:
        moved = 0
        while self.move_one(src, dst) is not None:
            moved += 1
        return moved

    def delete(self, queue: str, ids: list[int]) -> int:
        if not ids:
            return 0
        return self._call(lambda: self._core.delete_message_ids(queue, ids), "delete")

    def delete_queue(self, queue: str) -> int:
        return self._call(lambda: self._core.delete(queue), "delete")

    def read_one(self, queue: str, *, message_id: int | None = None) -> Message | None:
        """Remove and return one message: for queues nobody must lose (replies)."""
        return cast("Message | None", self._call(
            lambda: self._core.claim_one(queue, exact_timestamp=message_id, with_timestamps=True),
            "claim"))

    # -- looking ----------------------------------------------------------
    def peek_one(self, queue: str, *, message_id: int | None = None) -> Message | None:
        return cast("Message | None", self._look(
            lambda: self._core.peek_one(queue, exact_timestamp=message_id, with_timestamps=True)
        ))

    def peek_many(self, queue: str, limit: int, *, after: int | None = None) -> list[Message]:
        return self._look(
            lambda: cast("list[Message]", list(
                self._core.peek_many(queue, limit, with_timestamps=True, after_timestamp=after)
            ))
        )

    def peek_all(self, queue: str, *, after: int | None = None) -> Iterator[Message]:
        """Every pending message, oldest first, paged by id (safe to act between pages)."""
        cursor = after
        while True:
            page = self.peek_many(queue, PAGE, after=cursor)
            yield from page
            if len(page) < PAGE:
                return
            cursor = page[-1][1]

    def find_ids(self, queue: str, contains: str, *, limit: int = 1000,
                 after: int | None = None) -> list[int]:
        """Ids of pending messages whose body contains ``contains`` (at most 1000)."""
        return self._look(
            lambda: list(self._core.find_message_ids(queue, body_contains=contains, limit=limit,
                                                     after_timestamp=after))
        )

    def find_all_ids(self, queue: str, contains: str, *, after: int | None = None) -> list[int]:
        """Every pending id whose body contains ``contains``, oldest first, paged."""
        found: list[int] = []
        while True:
            page = sorted(self.find_ids(queue, contains, limit=PAGE, after=after))
            found.extend(page)
            if len(page) < PAGE:
                return found
            after = page[-1]

    def find_messages(self, queue: str, contains: str, *,
                      after: int | None = None) -> list[Message]:
        """Every pending (body, id) whose body contains ``contains``, oldest first."""
        found = []
        for mid in self.find_all_ids(queue, contains, after=after):
            msg = self.peek_one(queue, message_id=mid)
            if msg is not None:
                found.append(msg)
        return found

    def has_pending(self, queue: str) -> bool:
        return self._look(lambda: bool(self._core.has_pending_messages(queue)))

    def queue_stats(self) -> list[tuple[str, int, int]]:
        """(name, pending, total) for every queue that holds rows."""
        return self._look(lambda: [tuple(r) for r in self._core.get_queue_stats()])  # type: ignore[misc]

    def count(self, queue: str) -> int:
        return self._look(lambda: int(self._core.get_queue_stat(queue).pending))

    def data_version(self) -> int | None:
        """Changes whenever another connection may have committed; None if unknown.

        SQLite: ``PRAGMA data_version``. Postgres: a count of the schema's
        write/move notifications that also ticks twice a second (see
        :mod:`weft.broker.postgres`).
        """
        if self._shared.changes is not None:
            return self._call(self._shared.changes.version, "poll")
        return self._call(self._core.get_data_version, "poll")

    def change_feed(self) -> ChangeFeed | None:
        """Postgres: the LISTEN feed behind :meth:`data_version` (waiters select on it)."""
        return self._shared.changes

    def vacuum(self) -> None:
        self._call(lambda: self._core.vacuum(compact=True), "vacuum")

    # -- lifetime ---------------------------------------------------------
    def close(self) -> None:
        if os.getpid() != self._pid or self._closed:
            return
        self._closed = True
        _OPEN.discard(self)
        with _SHARED_LOCK:
            self._shared.users -= 1
            if self._shared.users > 0:
                return
            _SHARED.pop(self._key, None)
        self._shared.close()

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def message_limit() -> int:
    """The largest message a weft broker takes, known without opening one: both
    backends resolve their configuration with no environment (see :meth:`Broker.open`)."""
    return int(resolve_config("WEFT", env={})["MAX_MESSAGE_SIZE"])


class MessageTooLarge(BrokerError):
    """A message over the broker's size limit (simplebroker's 10 MiB; weft resolves the
    broker's configuration itself, so ``BROKER_MAX_MESSAGE_SIZE`` does not change it)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the broker's limit of {limit} bytes")
        self.size = size
        self.limit = limit


@contextmanager
def opened(root: Path, settings: Settings) -> Iterator[Broker]:
    broker = Broker.open(root, settings)
    try:
        yield broker
    finally:
        broker.close()
