"""asyncio face of the client: ``await task.wait()``, ``async for chunk in task.output()``.

An :class:`AsyncWeftClient` wraps a :class:`~weft.client.client.WeftClient`
and keeps its broker connection on the event loop's thread. Waiting never
blocks the loop and never polls each task: one small ticker per client
watches the broker's change marker (``data_version``, the same cheap check
every weft waiter uses, backing off to 50 ms when idle) and wakes every
waiter when something was committed; each waiter then looks at its own task
once. ``WeftExecutor`` futures work with ``asyncio.wrap_future`` as any
``concurrent.futures.Future`` does.

Control commands (stop, kill, pause ...) wait for the task's reply, so they
run in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from weft.client.task import Task
from weft.errors import TaskFailed, WaitTimeout
from weft.names import task_queue
from weft.runtime.wakeup import Backoff

if TYPE_CHECKING:
    from weft.client.client import WeftClient
    from weft.client.result import Result
    from weft.client.sweep import Run

TICK_CAP = 0.05


class _Changes:
    """One ticker per client: bumps ``generation`` whenever the broker changed."""

    def __init__(self, client: WeftClient) -> None:
        self.client = client
        self.generation = 0
        self.waiters = 0
        self._cond: asyncio.Condition | None = None
        self._ticker: asyncio.Task[None] | None = None

    async def wait(self, seen: int, timeout: float | None) -> None:
        """Until the generation moves past ``seen`` (or ``timeout`` passes)."""
        if self._cond is None:
            self._cond = asyncio.Condition()
        cond = self._cond
        async with cond:
            self.waiters += 1
            if self._ticker is None or self._ticker.done():
                self._ticker = asyncio.create_task(self._tick())
            try:
                await asyncio.wait_for(cond.wait_for(lambda: self.generation > seen), timeout)
            except TimeoutError:
                pass
            finally:
                self.waiters -= 1

    async def _tick(self) -> None:
        assert self._cond is not None
        broker = self.client.broker
        version = broker.data_version()
        backoff = Backoff(cap=TICK_CAP)
        # A change between a waiter's look and this first reading would go
        # unseen: make every waiter look once more.
        async with self._cond:
            self.generation += 1
            self._cond.notify_all()
        while self.waiters:
            await asyncio.sleep(backoff.timeout())
            current = broker.data_version()
            if current is None or current != version:
                version = current
                backoff.reset()
                async with self._cond:
                    self.generation += 1
                    self._cond.notify_all()


class AsyncTask:
    """An awaitable handle on one task (``.task`` is the plain :class:`Task`)."""

    def __init__(self, owner: AsyncWeftClient, task: Task) -> None:
        self.owner = owner
        self.task = task

    def __repr__(self) -> str:
        return f"AsyncTask({self.tid!r})"

    @property
    def tid(self) -> str:
        return self.task.tid

    async def wait(self, timeout: float | None = None) -> Result:
        """The task's Result once it has ended, whatever the status (WaitTimeout after ``timeout``)."""
        return await self.owner.until(self._ended, timeout=timeout, what=f"task {self.tid}")

    async def result(self, timeout: float | None = None) -> Result:
        """:meth:`wait`, then raise TaskFailed unless the task completed."""
        res = await self.wait(timeout)
        if not res.ok:
            detail = res.error or res.reason or f"exit code {res.exit_code}"
            raise TaskFailed(f"task {self.tid} {res.status}: {detail}", result=res)
        return res

    def done(self) -> bool:
        return self.task.done()

    async def output(self, timeout: float | None = None) -> AsyncIterator[dict[str, Any]]:
        """Each output chunk as it arrives (``stream``, ``seq``, ``data``, ``attempt``);
        ends with the task. Same chunks as :meth:`Task.output`."""
        broker = self.owner.client.broker
        queue = task_queue(self.tid, "outbox")
        cursor: int | None = None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            page = await self.owner.until(functools.partial(_page, broker, queue, cursor),
                                          timeout=remaining, what=f"output of {self.tid}")
            for body, mid in page:
                cursor = mid
                message = json.loads(body)
                if message.get("type") == "result":
                    return
                yield message

    async def status(self) -> dict[str, Any]:
        return self.task.status()

    async def stop(self, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.to_thread(self.task.stop, timeout)

    async def kill(self, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.to_thread(self.task.kill, timeout)

    def _ended(self) -> Result | None:
        try:
            return self.task.wait(timeout=0.0)
        except WaitTimeout:
            return None


class AsyncRun:
    """The tasks of one :meth:`AsyncWeftClient.submit_many` (``.tasks``, in input order)."""

    def __init__(self, owner: AsyncWeftClient, run: Run) -> None:
        self.run = run
        self.tasks = [AsyncTask(owner, task) for task in run.tasks]

    def __len__(self) -> int:
        return len(self.tasks)

    async def as_completed(self, timeout: float | None = None) -> AsyncIterator[AsyncTask]:
        """Each task as it ends (any status), first finished first."""
        waits = {asyncio.ensure_future(t.wait(timeout)): t for t in self.tasks}
        try:
            for next_done in asyncio.as_completed(list(waits)):
                finished = await next_done
                yield next(t for t in self.tasks if t.tid == finished.tid)
        finally:
            for future in waits:
                future.cancel()

    async def results(self, *, timeout: float | None = None,
                      return_exceptions: bool = False) -> list[Any]:
        """Every task's value in input order (see :meth:`Run.results`)."""
        out = []
        for task in self.tasks:
            try:
                out.append((await task.result(timeout)).value)
            except TaskFailed as exc:
                if not return_exceptions:
                    raise
                out.append(exc)
        return out

    async def cancel(self) -> list[AsyncTask]:
        """Stop every task not ended, the queued ones first (see :meth:`Run.cancel`)."""
        stopped = {t.tid for t in await asyncio.to_thread(self.run.cancel)}
        return [t for t in self.tasks if t.tid in stopped]


def _page(broker: Any, queue: str, after: int | None) -> list[tuple[str, int]] | None:
    return broker.peek_many(queue, 500, after=after) or None


class AsyncWeftClient:
    """``WeftClient`` for asyncio code; use ``async with AsyncWeftClient() as client``.

    ``submit``/``run`` take the same arguments as :class:`WeftClient`'s.
    The wrapped client is ``.client`` (for anything not wrapped here).
    """

    def __init__(self, path: str | None = None, *, client: WeftClient | None = None,
                 **options: Any) -> None:
        if client is None:
            from weft.client.client import WeftClient

            client = WeftClient(path, **options)
        self.client = client
        self._changes = _Changes(client)

    async def __aenter__(self) -> AsyncWeftClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    async def submit(self, *, function: str | Callable[..., Any] | None = None,
                     command: Sequence[str] | str | None = None, args: Sequence[Any] = (),
                     kwargs: Mapping[str, Any] | None = None, **options: Any) -> AsyncTask:
        """Queue a task (see :meth:`WeftClient.submit`) and return its AsyncTask."""
        task = self.client.submit(function=function, command=command, args=args, kwargs=kwargs,
                                  **options)
        return AsyncTask(self, task)

    async def run(self, *, wait_timeout: float | None = None, **submit: Any) -> Result:
        """Submit, then await the Result; TaskFailed unless it completed."""
        task = await self.submit(**submit)
        return await task.result(timeout=wait_timeout)

    async def submit_many(self, specs: Iterable[Mapping[str, Any]], **common: Any) -> AsyncRun:
        """:meth:`WeftClient.submit_many` (every item checked before any is queued)."""
        return AsyncRun(self, self.client.submit_many(specs, **common))

    def task(self, tid: str | int) -> AsyncTask:
        return AsyncTask(self, self.client.task(tid))

    async def until(self, check: Callable[[], Any], *, timeout: float | None, what: str) -> Any:
        """Await the first non-None ``check()``, looking again only after a broker change."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            seen = self._changes.generation
            found = check()
            if found is not None:
                return found
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
            await self._changes.wait(seen, remaining)
