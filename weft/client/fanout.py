"""map and as_completed: many tasks, bounded in flight, results in order.

``map`` takes per-item task options (``options=lambda item: {...}``, so one
sweep can give each trial its own VRAM), can hand failures back in place
(``return_exceptions``), and stops the tasks it started when the caller
stops reading early, so an abandoned sweep does not keep holding GPUs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from weft.client.task import Task
from weft.errors import TaskFailed, UsageError, WaitTimeout, WeftError
from weft.runtime.wakeup import Backoff

if TYPE_CHECKING:
    from weft.client.client import WeftClient


def ordered_map(client: WeftClient, fn: str | Callable[..., Any], iterable: Iterable[Any], *,
                timeout: float | None, max_in_flight: int,
                options: dict[str, Any] | None = None,
                per_item: Callable[[Any], dict[str, Any]] | None = None,
                return_exceptions: bool = False) -> Iterator[Any]:
    """Yield ``fn(item)`` values in input order; raise TaskFailed on the first failure
    (or, with ``return_exceptions``, yield it in the item's place).

    At most ``max_in_flight`` tasks are submitted and unfinished at any time;
    the input is consumed lazily, so it may be a long or endless generator.
    ``per_item(item)`` gives options that override ``options`` for that
    item's task. When the caller stops early (``break``, an exception, the
    first failure) the tasks still in the window are stopped.
    """
    if max_in_flight < 1:
        raise UsageError("max_in_flight must be at least 1")
    deadline = deadline_left(timeout)
    items = iter(iterable)
    window: deque[Task] = deque()
    exhausted = False
    try:
        while True:
            while not exhausted and len(window) < max_in_flight:
                try:
                    item = next(items)
                except StopIteration:
                    exhausted = True
                    break
                opts = {**(options or {}), **(per_item(item) if per_item else {})}
                window.append(client.submit(function=fn, args=[item], **opts))
            if not window:
                return
            yield value_or_failure(window[0], deadline(), return_exceptions)
            window.popleft()
    finally:
        stop_all(window)


def deadline_left(timeout: float | None) -> Callable[[], float | None]:
    """A function giving the seconds left of ``timeout`` (None: no deadline)."""
    end = None if timeout is None else time.monotonic() + timeout
    return lambda: None if end is None else max(0.0, end - time.monotonic())


def value_or_failure(task: Task, timeout: float | None, return_exceptions: bool) -> Any:
    """The task's value; its TaskFailed raised, or returned with ``return_exceptions``."""
    try:
        return task.result(timeout=timeout).value
    except TaskFailed as exc:
        if return_exceptions:
            return exc
        raise


def stop_all(tasks: Iterable[Task]) -> None:
    """Stop each task that has not ended (queued ones never start)."""
    for task in tasks:
        try:
            if not task.done():
                task.stop()
        except WeftError:
            continue


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
