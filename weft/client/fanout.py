"""map and as_completed: many tasks, bounded in flight, results in order."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from weft.client.task import Task
from weft.errors import UsageError, WaitTimeout
from weft.runtime.wakeup import Backoff

if TYPE_CHECKING:
    from weft.client.client import WeftClient


def ordered_map(client: WeftClient, fn: str | Callable[..., Any], iterable: Iterable[Any], *,
                timeout: float | None, max_in_flight: int,
                options: dict[str, Any] | None = None) -> Iterator[Any]:
    """Yield ``fn(item)`` values in input order; raise TaskFailed on the first failure.

    At most ``max_in_flight`` tasks are submitted and unfinished at any time;
    the input is consumed lazily, so it may be a long or endless generator.
    """
    if max_in_flight < 1:
        raise UsageError("max_in_flight must be at least 1")
    deadline = None if timeout is None else time.monotonic() + timeout
    items = iter(iterable)
    window: deque[Task] = deque()
    exhausted = False
    while True:
        while not exhausted and len(window) < max_in_flight:
            try:
                item = next(items)
            except StopIteration:
                exhausted = True
                break
            window.append(client.submit(function=fn, args=[item], **(options or {})))
        if not window:
            return
        head = window.popleft()
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        yield head.result(timeout=remaining).value


def as_completed(client: WeftClient, tasks: list[Task], *, timeout: float | None) -> Iterator[Task]:
    """Yield each task as it finishes (any status)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = list(tasks)
    backoff = Backoff()
    version = client.broker.data_version()
    while pending:
        finished = [t for t in pending if t.done()]
        for task in finished:
            pending.remove(task)
            task.wait(timeout=0.0)
            yield task
        if finished:
            backoff.reset()
            continue
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(f"{len(pending)} task(s) still running after {timeout:g}s")
        time.sleep(backoff.timeout())
        current = client.broker.data_version()
        if current != version:
            version = current
            backoff.reset()
