"""The thread behind a WeftExecutor: queue its tasks in weft, settle their futures.

One thread per executor, with its own broker connection (a connection is
never shared between threads). It wakes on a local signal (a submit, a
cancelled future, shutdown) or on a broker change (``data_version``, with
the back-off every weft waiter uses), and reads only the events written to
``weft.tasks.log`` since it last looked: one query per wake however many
tasks are in flight. A slow sweep of the in-flight tasks' outboxes backs
the events up, so a missed event delays a future, never loses it.

It holds a task's spec only until the task is queued, and a future only
until it is settled: nothing keeps a submitted callable, its arguments or
its result alive after the caller let go (the conformance suite checks).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weft.errors import WaitTimeout, WeftError
from weft.models.states import TERMINAL
from weft.names import TASKS_LOG
from weft.runtime.wakeup import Backoff

if TYPE_CHECKING:
    from weft.client.client import WeftClient
    from weft.models import TaskSpec

SWEEP_EVERY = 2.0
PAGE = 1000
IDLE_CAP = 0.02
IDLE_EXIT = 1.0  # an idle thread lingers this long for the next submit, then exits


class _Item:
    """One future and, until it is queued, the spec of its task."""

    __slots__ = ("batch", "future", "raw", "spec", "started", "tid")

    def __init__(self, future: Future[Any], spec: TaskSpec | None, batch: bool) -> None:
        self.future = future
        self.spec = spec
        self.batch = batch
        self.raw = False  # settle with the Result itself (watch), not value/exception
        self.tid: str | None = None
        self.started: bool | None = None  # what set_running_or_notify_cancel said

    def start(self) -> bool:
        """``set_running_or_notify_cancel`` exactly once (a second call raises);
        True when the future now runs, False when it was cancelled."""
        if self.started is None:
            self.started = self.future.set_running_or_notify_cancel()
        return self.started


class Dispatcher:
    def __init__(self, root: Path, max_workers: int | None) -> None:
        self.root = root
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._inbox: deque[tuple[str, _Item]] = deque()
        self._wake = threading.Event()
        self._outstanding: dict[_Item, None] = {}  # insertion order: oldest first
        self._pending: deque[_Item] = deque()
        self._inflight: dict[str, _Item] = {}
        self._stopping = False
        self._broken: str | None = None
        self._thread: threading.Thread | None = None

    # -- called from the caller's threads -------------------------------------------
    def add(self, spec: TaskSpec, *, batch: bool) -> Future[Any]:
        """Queue ``spec`` as a task; the future settles with its value or exception."""
        future: Future[Any] = Future()
        future.weft_tid = None  # type: ignore[attr-defined]
        return self._enqueue("add", _Item(future, spec, batch))

    def watch(self, tid: str) -> Future[Any]:
        """A future that settles with the Result of the (already queued) task ``tid``."""
        item = _Item(Future(), None, False)
        item.tid = tid
        item.raw = True
        return self._enqueue("watch", item)

    def _enqueue(self, kind: str, item: _Item) -> Future[Any]:
        from weft.client.executor import BrokenTask

        with self._lock:
            if self._broken:
                raise BrokenTask(self._broken)
            self._outstanding[item] = None
            self._inbox.append((kind, item))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="weft-dispatch",
                                                daemon=True)
                self._thread.start()
        item.future.add_done_callback(functools.partial(self._on_done, item))
        self._wake.set()
        return item.future

    def unfinished(self) -> list[Future[Any]]:
        """The futures not yet done, oldest first."""
        with self._lock:
            items = list(self._outstanding)
        return [item.future for item in items if not item.future.done()]

    def _on_done(self, item: _Item, future: Future[Any]) -> None:
        with self._lock:
            self._outstanding.pop(item, None)
            if future.cancelled():
                self._inbox.append(("cancel", item))
        self._wake.set()

    def shutdown(self, *, wait: bool, cancel_futures: bool) -> None:
        with self._lock:
            self._stopping = True
            items = list(self._outstanding)
            thread = self._thread
        if cancel_futures:
            for item in items:
                item.future.cancel()
        self._wake.set()
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- the thread ---------------------------------------------------------------
    def _run(self) -> None:
        from weft.client.client import WeftClient

        client = WeftClient(self.root)
        try:
            self._loop(client)
        except BaseException as exc:  # noqa: BLE001 - every future must hear of it
            self._break(f"the executor's dispatcher stopped: {type(exc).__name__}: {exc}")
        finally:
            client.close()

    def _loop(self, client: WeftClient) -> None:
        cursor = client.broker.generate_id()
        backoff = Backoff(cap=IDLE_CAP)
        version: int | None = None
        swept = time.monotonic()
        idle_since: float | None = None
        while True:
            busy = self._take_inbox(client)
            busy = self._launch(client) or busy
            current = client.broker.data_version()
            if current is None or current != version:
                version = current
                cursor, seen = self._scan(client, cursor)
                busy = busy or seen
            if self._inflight and time.monotonic() - swept > SWEEP_EVERY:
                self._sweep(client)
                swept = time.monotonic()
            with self._lock:
                if self._inbox or self._pending or self._inflight:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                if idle_since is not None and (self._stopping
                                               or time.monotonic() - idle_since > IDLE_EXIT):
                    self._thread = None  # the next submit starts a new thread
                    return
            if busy:
                backoff.reset()
                continue
            self._wake.wait(backoff.timeout())
            self._wake.clear()

    def _take_inbox(self, client: WeftClient) -> bool:
        with self._lock:
            work = list(self._inbox)
            self._inbox.clear()
        for kind, item in work:
            if kind == "add":
                self._pending.append(item)
            elif kind == "watch":
                assert item.tid is not None
                self._inflight[item.tid] = item
                if client.task(item.tid).done():
                    self._settle(client, item)
            else:
                self._cancelled(client, item)
        return bool(work)

    def _cancelled(self, client: WeftClient, item: _Item) -> None:
        """A future was cancelled: take its task out of weft if it got there."""
        item.start()  # tells wait()/as_completed() it was cancelled
        item.spec = None
        if item.tid is not None and self._inflight.pop(item.tid, None) is not None and not item.raw:
            try:
                client.task(item.tid).stop(timeout=5.0)
            except WeftError:
                pass  # it ended meanwhile, or its manager is gone: the future is cancelled anyway

    def _launch(self, client: WeftClient) -> bool:
        launched = False
        while self._pending and (self.max_workers is None
                                 or len(self._inflight) < self.max_workers):
            item = self._pending.popleft()
            if item.spec is None or item.future.done():
                continue
            try:
                task = client.submit_spec(item.spec)
            except WeftError as exc:
                self._fail(item, exc)
                continue
            item.spec = None
            item.tid = task.tid
            item.future.weft_tid = task.tid  # type: ignore[attr-defined]
            self._inflight[task.tid] = item
            launched = True
        return launched

    def _scan(self, client: WeftClient, cursor: int) -> tuple[int, bool]:
        """Act on the events written since ``cursor``; return the new cursor."""
        seen = False
        while True:
            rows = client.broker.peek_many(TASKS_LOG, PAGE, after=cursor)
            for body, mid in rows:
                cursor = mid
                if not self._inflight:
                    continue
                try:
                    event = json.loads(body)
                except ValueError:
                    continue
                tid = event.get("tid") if isinstance(event, dict) else None
                item = self._inflight.get(tid) if isinstance(tid, str) else None
                if item is None:
                    continue
                seen = True
                status = event.get("status")
                if status in TERMINAL:
                    self._settle(client, item)
                elif status == "running" and not item.start():
                    self._cancelled(client, item)
            if len(rows) < PAGE:
                return cursor, seen

    def _sweep(self, client: WeftClient) -> None:
        for item in list(self._inflight.values()):
            assert item.tid is not None
            if client.task(item.tid).done():
                self._settle(client, item)

    def _settle(self, client: WeftClient, item: _Item) -> None:
        from weft.client.executor import outcome_exception

        assert item.tid is not None
        try:
            result = client.task(item.tid).wait(timeout=0.0)
        except WaitTimeout:
            return  # the event came first: the sweep will find the result
        except WeftError as exc:
            self._inflight.pop(item.tid, None)
            self._fail(item, exc)
            return
        self._inflight.pop(item.tid, None)
        future = item.future
        if future.done():
            return
        if item.raw:
            if item.start():
                future.set_result(result)
            return
        if result.status == "cancelled" and item.started is None:
            future.cancel()
            item.start()
            return
        if not item.start():
            return
        if result.ok:
            future.set_result(result.value)
        else:
            future.set_exception(outcome_exception(result))

    def _fail(self, item: _Item, exc: BaseException) -> None:
        if item.start() and not item.future.done():
            item.future.set_exception(exc)

    def _break(self, why: str) -> None:
        from weft.client.executor import BrokenTask

        with self._lock:
            self._broken = why
            items = list(self._outstanding)
            self._inbox.clear()
        self._pending.clear()
        self._inflight.clear()
        for item in items:
            self._fail(item, BrokenTask(why, tid=item.tid))
