"""WeftClient: submit tasks, wait for them, control them, manage managers.

The CLI is a thin layer over this class: one code path, one set of errors.
Methods return data and raise :mod:`weft.errors`; nothing here prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from weft import context as _context
from weft.broker import Broker
from weft.client.result import Result
from weft.client.specs import build_spec
from weft.client.task import Task
from weft.client.workers import Workers
from weft.models import SpawnRequest, TaskSpec
from weft.names import SPAWN_REQUESTS


class WeftClient:
    """A connection to one weft project (its ``.weft/`` broker).

    ``path`` is a project directory; without it the project is found like
    git finds a repository (or via ``WEFT_CONTEXT``). ``create`` makes a new
    ``.weft/`` in the current directory when none is found.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, create: bool = True,
                 announce: bool = False, auto_start: bool = True) -> None:
        self.context = _context.resolve(path, create=create, announce=announce)
        self.auto_start = auto_start
        self._broker: Broker | None = None
        self.workers = Workers(self)

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            self._broker = Broker.open(self.context.root, self.context.settings)
        return self._broker

    def close(self) -> None:
        if self._broker is not None:
            self._broker.close()
            self._broker = None

    def __enter__(self) -> WeftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building specs -----------------------------------------------------
    def build_spec(self, **pieces: Any) -> TaskSpec:
        """Validate the pieces of a task into a TaskSpec; InvalidSpec names the field."""
        return build_spec(**pieces)

    # -- submitting ---------------------------------------------------------
    def submit(self, *, command: Sequence[str] | str | None = None,
               function: str | Callable[..., Any] | None = None,
               spec: TaskSpec | Mapping[str, Any] | None = None, args: Sequence[Any] = (),
               kwargs: Mapping[str, Any] | None = None, request_id: str | None = None,
               inbox_message: Any = None, delay: float | None = None,
               **fields: Any) -> Task:
        """Queue a task and return its handle at once; starts a manager if none runs."""
        task_spec = self.build_spec(command=command, function=function, spec=spec,  # type: ignore[arg-type]
                                    args=args, kwargs=kwargs, request_id=request_id, **fields)
        return self.submit_spec(task_spec, inbox_message=inbox_message, delay=delay)

    def submit_spec(self, spec: TaskSpec, *, inbox_message: Any = None,
                    delay: float | None = None) -> Task:
        import time

        not_before = time.time() + delay if delay else None
        request = SpawnRequest(taskspec=spec, inbox_message=inbox_message,
                               request_id=spec.request_id, not_before=not_before)
        tid = self.broker.write(SPAWN_REQUESTS, request.model_dump_json(exclude_none=True))
        if self.auto_start:
            self.workers.ensure_running()
        return Task(self, str(tid).zfill(19))

    def run(self, *, timeout: float | None = None, **submit_args: Any) -> Result:
        """Submit and wait; return the Result (raise TaskFailed unless completed)."""
        return self.submit(**submit_args).result(timeout=timeout)

    # -- handles --------------------------------------------------------------
    def task(self, tid: str) -> Task:
        return Task(self, self.resolve_tid(tid))

    def resolve_tid(self, tid: str) -> str:
        from weft.client.queries import resolve_tid

        return resolve_tid(self.broker, tid)

    def tasks(self, *, request_id: str | None = None) -> list[dict[str, Any]]:
        from weft.client.queries import list_tasks

        return list_tasks(self.broker, request_id=request_id)

    def overview(self) -> dict[str, Any]:
        from weft.client.queries import overview

        return overview(self.broker)

    # -- observing ----------------------------------------------------------------
    def tree(self, tid: str) -> dict[str, Any]:
        """The task and the tasks it spawned (by parent_tid), each with a roll-up."""
        from weft.client.tree import tree

        return tree(self.broker, self.resolve_tid(tid))

    def snapshot(self) -> dict[str, Any]:
        """Managers, running tasks (elapsed, RSS), queue depth, recent failures."""
        from weft.client.monitor import snapshot

        return snapshot(self.broker)

    def events(self, *, request_id: str | None = None, tid: str | None = None,
               last: int | None = None, follow: bool = False) -> Iterator[dict[str, Any]]:
        """Events of weft.tasks.log, oldest first; ``follow`` keeps yielding new ones."""
        from weft.client.logs import events

        full = self.resolve_tid(tid) if tid else None
        return events(self.broker, request_id=request_id, tid=full, last=last, follow=follow)

    def task_log(self, tid: str, *, follow: bool = False) -> Iterator[dict[str, Any]]:
        """A task's output chunks, events and result, in the order they were written."""
        from weft.client.logs import known, task_log
        from weft.errors import NotFound

        full = self.resolve_tid(tid)
        if not known(self.broker, full):
            raise NotFound(f"no task {full}")
        return task_log(self.broker, full, follow=follow)

    def metrics(self) -> str:
        """The Prometheus exposition of the whole project, computed from the broker."""
        from weft.metrics.exposition import render

        return render(self.broker)

    # -- fan-out ----------------------------------------------------------------
    def map(self, fn: str | Callable[..., Any], iterable: Iterable[Any], *,
            timeout: float | None = None, max_in_flight: int = 64, **fields: Any) -> Iterator[Any]:
        """Run ``fn(item)`` for each item as its own task; yield values in input order."""
        from weft.client.fanout import ordered_map

        return ordered_map(self, fn, iterable, timeout=timeout, max_in_flight=max_in_flight,
                           **fields)

    def as_completed(self, tasks: Iterable[Task], *, timeout: float | None = None) -> Iterator[Task]:
        from weft.client.fanout import as_completed

        return as_completed(self, list(tasks), timeout=timeout)
