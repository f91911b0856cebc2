"""Run: a handle on many tasks submitted together (``client.submit_many``).

A sweep (40 trials of one training function with different settings) is
many tasks that live and die together: the caller wants each one's handle,
the results in input order or first-finished first, the failures collected
rather than raised, and one call that stops everything still pending once a
good trial turned up. A Run is only a list of Task handles plus those
operations; like every handle it holds no state the broker does not.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from weft.errors import WeftError

if TYPE_CHECKING:
    from weft.client.client import WeftClient
    from weft.client.task import Task


class Run:
    """The tasks of one ``submit_many`` call, in input order (``.tasks``)."""

    def __init__(self, client: WeftClient, tasks: Sequence[Task]) -> None:
        self.client = client
        self.tasks: list[Task] = list(tasks)

    def __repr__(self) -> str:
        return f"Run({len(self.tasks)} tasks)"

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def as_completed(self, timeout: float | None = None) -> Iterator[Task]:
        """Each task as it ends (any status), first finished first."""
        return self.client.as_completed(self.tasks, timeout=timeout)

    def results(self, *, timeout: float | None = None,
                return_exceptions: bool = False) -> list[Any]:
        """Every task's value in input order.

        A task that did not complete raises its TaskFailed, or with
        ``return_exceptions=True`` stands in the list in its place.
        ``timeout`` bounds the whole wait (WaitTimeout).
        """
        from weft.client.fanout import deadline_left, value_or_failure

        deadline = deadline_left(timeout)
        return [value_or_failure(task, deadline(), return_exceptions) for task in self.tasks]

    def done(self) -> bool:
        return all(task.done() for task in self.tasks)

    def cancel(self) -> list[Task]:
        """Stop every task of the run that has not ended; return those stopped.

        Queued tasks go first, each taken off the spawn queue in one atomic
        step, so none of them can start while the running ones are being
        stopped; then each running task gets STOP (it ends ``cancelled``).
        """
        pending = [task for task in self.tasks if not task.done()]
        stopped = [task for task in pending if task._cancel_if_queued("STOP")]
        for task in pending:
            if task in stopped:
                continue
            try:
                task.stop()
            except WeftError:
                continue  # ended meanwhile or its manager is gone; nothing left to stop
            stopped.append(task)
        return stopped

