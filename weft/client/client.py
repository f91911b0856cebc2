"""WeftClient: submit tasks, wait for them, control them, manage managers.

The CLI is a thin layer over this class: one code path, one set of errors.
Methods return data and raise :mod:`weft.errors`; nothing here prints.
The class is the public surface (docs/python-api.md); the work behind the
larger verbs lives in one module per responsibility that the methods call:
:mod:`weft.client.submitting` (building and queuing requests) and
:mod:`weft.client.operating` (restart, hold, release, edit, cancel).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Unpack

from weft import context as _context
from weft.broker import Broker
from weft.client.queues import Queues
from weft.client.task import Task
from weft.client.workers import Workers

if TYPE_CHECKING:
    # Loaded on first use: pydantic is most of a short CLI command's start-up.
    from weft.client.dispatch import Dispatcher
    from weft.client.groups import Groups
    from weft.client.result import Result
    from weft.client.specs import CommonOptions, TaskOptions
    from weft.client.sweep import Run
    from weft.models import TaskSpec


class WeftClient:
    """A connection to one weft project (its ``.weft/`` broker).

    ``path`` is a project directory; without it the project is found like
    git finds a repository (or via ``WEFT_CONTEXT``), exactly as the CLI
    does. ``create`` (the default, like ``weft run``) makes a new
    ``.weft/`` in the current directory (or ``path``) when none is found.
    ``auto_start`` starts a manager on submit when none is live.

    Use it as a context manager (or call :meth:`close`) to release the
    broker connection; handles keep working after a close by reconnecting.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, create: bool = True,
                 announce: bool = False, auto_start: bool = True) -> None:
        self.context = _context.resolve(path, create=create, announce=announce)
        self.auto_start = auto_start
        # Told one line when a wait meets a broker outage (the CLI prints it);
        # waits ride the outage out either way.
        self.on_broker_outage: Callable[[str], None] | None = None
        self._broker: Broker | None = None
        self.workers = Workers(self)
        self.queues = Queues(self)
        self._watcher: Dispatcher | None = None
        self._groups: Groups | None = None

    @property
    def groups(self) -> Groups:
        """Task groups (:class:`~weft.client.groups.Groups`), built on first use."""
        if self._groups is None:
            from weft.client.groups import Groups

            self._groups = Groups(self)
        return self._groups

    def __repr__(self) -> str:
        return f"WeftClient({str(self.context.root)!r})"

    @property
    def broker(self) -> Broker:
        """The connection, opened on first use (one per client)."""
        if self._broker is None:
            self._broker = Broker.open(self.context.root, self.context.settings)
        return self._broker

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.shutdown(wait=False, cancel_futures=True)
            self._watcher = None
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
        from weft.client.specs import build_spec

        return build_spec(**pieces)

    # -- submitting ---------------------------------------------------------
    def submit(self, *, command: Sequence[str] | str | None = None,
               function: str | Callable[..., Any] | None = None,
               spec: TaskSpec | Mapping[str, Any] | None = None, args: Sequence[Any] = (),
               kwargs: Mapping[str, Any] | None = None,
               **options: Unpack[TaskOptions]) -> Task:
        """Queue a task and return its handle at once; start a manager if none is live.

        Give exactly one target: ``command`` (an argv list; a string is split
        on whitespace unless ``shell=True``), ``function`` ("pkg.mod:fn" or an
        importable callable, with ``args``/``kwargs``) or ``spec`` (a TaskSpec
        or a dict, which the other options override). Options are the
        TaskSpec fields (``name``, ``env``, ``cwd``, ``timeout``,
        ``resources``, ``priority`` ...) plus ``request_id``, ``retries``,
        ``inbox_message`` (a JSON work item, given to the task as its stdin),
        ``stdin`` (bytes, or a binary file read to its end here, in chunks:
        the task's stdin, exactly), ``delay`` (seconds before it may start)
        and ``serializer`` ("auto", "json" or "pickle": how a function's
        arguments and result travel; "auto" pickles what JSON cannot carry
        exactly, see :mod:`weft.models.values`).
        ``after=[task, ...]`` (handles or TIDs) makes it wait
        until they completed (``after_mode="any"``: one of them;
        ``"finished"``: all ended, whatever the outcome); it is cancelled
        when that can no longer happen. ``group="NAME"`` puts it in a task
        group (:attr:`groups`); ``hold=True`` queues it held, so it starts
        only after :meth:`release`. Bad input raises InvalidSpec before
        anything is queued.
        """
        opts: dict[str, Any] = dict(options)
        inbox_message = opts.pop("inbox_message", None)
        stdin = opts.pop("stdin", None)
        delay = opts.pop("delay", None)
        hold = bool(opts.pop("hold", False))
        from weft.client.submitting import spec_of

        task_spec = spec_of(self, {"command": command, "function": function, "spec": spec,
                                 "args": args, "kwargs": kwargs, **opts})
        return self.submit_spec(task_spec, inbox_message=inbox_message, delay=delay, stdin=stdin,
                                hold=hold)

    def submit_spec(self, spec: TaskSpec, *, inbox_message: Any = None,
                    delay: float | None = None, stdin: bytes | IO[bytes] | None = None,
                    stdin_stream: bool = False, hold: bool = False) -> Task:
        """Queue an already validated TaskSpec (see :meth:`submit`).

        ``stdin_stream``: the caller sends the stdin itself (:meth:`send_stdin`).
        """
        from weft.client.submitting import submit_spec

        return submit_spec(self, spec, inbox_message=inbox_message, delay=delay, stdin=stdin,
                           stdin_stream=stdin_stream, hold=hold)

    def send_stdin(self, task: Task, source: bytes | IO[bytes] | int, *,
                   done: Callable[[], bool] | None = None) -> int:
        """Stream ``source`` to a task submitted with a streamed stdin, then EOF.

        With ``done``, keep only a few chunks ahead of the task and stop once
        ``done()`` is true (how ``weft run`` pipes its own stdin).
        """
        from weft.client.stdin import send_stdin

        return send_stdin(self.broker, task.tid, source, done=done)

    def submit_fields(self, fields: Mapping[str, Any], *, delay: float | None = None,
                      stdin_stream: bool = False, hold: bool = False,
                      extra: Mapping[str, Any] | None = None) -> Task:
        """Queue a task given as plain fields that :func:`weft.client.fields.checked_fields`
        has passed: the CLI's way, which must not pay for importing pydantic.

        The request has the same shape :meth:`submit_spec` writes (a test
        holds them equal), and the manager validates it as a TaskSpec when
        it reads it, as it does every request.
        """
        from weft.client.submitting import submit_fields

        return submit_fields(self, fields, delay=delay, stdin_stream=stdin_stream, hold=hold,
                             extra=extra)

    def run(self, *, command: Sequence[str] | str | None = None,
            function: str | Callable[..., Any] | None = None,
            spec: TaskSpec | Mapping[str, Any] | None = None, args: Sequence[Any] = (),
            kwargs: Mapping[str, Any] | None = None, wait_timeout: float | None = None,
            **options: Unpack[TaskOptions]) -> Result:
        """:meth:`submit`, then wait: return the Result, raise TaskFailed unless completed.

        ``timeout`` is the task's own deadline, as for :meth:`submit`;
        ``wait_timeout`` bounds how long this call waits (WaitTimeout).
        """
        task = self.submit(command=command, function=function, spec=spec, args=args,
                           kwargs=kwargs, **options)
        return task.result(timeout=wait_timeout)

    # -- handles --------------------------------------------------------------
    def task(self, tid: str | int) -> Task:
        """The handle of any task or manager; short TIDs (an unambiguous tail of 6+ digits) work."""
        return Task(self, self.resolve_tid(str(tid)))

    def resolve_tid(self, tid: str) -> str:
        from weft.client.queries import resolve_tid

        full = tid.strip().removeprefix("T")
        if len(full) == 19 and full.isdigit():
            return full  # needs no broker: 'weft result TID' can wait for one that is away

        return resolve_tid(self.broker, tid)

    def tasks(self, *, request_id: str | None = None) -> list[dict[str, Any]]:
        """One row per task, oldest first (rebuilt from the log and the spawn queue)."""
        from weft.client.queries import list_tasks

        return list_tasks(self.broker, request_id=request_id)

    def overview(self) -> dict[str, Any]:
        """Task counts by state and queue depths, as ``weft status`` shows them."""
        from weft.client.queries import overview

        return overview(self.broker)

    # -- operating on queued and finished tasks (issue 14) ------------------------
    def restart(self, tid: str, *, env: Mapping[str, str] | None = None,
                cwd: str | None = None, command: Sequence[str] | None = None,
                hold: bool = False) -> Task:
        """Submit an ended task's recorded spec again as a new task (``restarted_from``
        in its submit record); ``env`` is merged, ``cwd`` and ``command`` replace."""
        from weft.client.operating import restart

        return restart(self, tid, env=env, cwd=cwd, command=command, hold=hold)

    def hold(self, tid: str | Sequence[str] | None = None, **where: Any) -> list[dict[str, Any]]:
        """Keep queued tasks from starting: one TID, a list, or every task ``where`` selects
        (``label``, ``request_id``, ``group``, ``status``, ``name``, ``all``)."""
        from weft.client.operating import hold_or_release

        return hold_or_release(self, tid, where, release=False)

    def release(self, tid: str | Sequence[str] | None = None,
                **where: Any) -> list[dict[str, Any]]:
        """Let held tasks be claimed again, in their old place (see :meth:`hold`)."""
        from weft.client.operating import hold_or_release

        return hold_or_release(self, tid, where, release=True)

    def edit(self, tid: str, *, priority: int | None = None,
             env: Mapping[str, str] | None = None, group: str | None = None) -> dict[str, Any]:
        """Change a queued or held task's priority, env (merged) or group
        (``"default"`` removes it), keeping its TID; UsageError once it started."""
        from weft.client.operating import edit

        return edit(self, tid, priority=priority, env=env, group=group)

    def cancel(self, tid: str | Sequence[str] | None = None, *, kill: bool = False,
               timeout: float = 10.0, **where: Any) -> list[dict[str, Any]]:
        """Stop (``kill=True``: kill) one task, a list of TIDs, or every task
        ``where`` selects (``label``, ``request_id``, ``group``, ``status``,
        ``name``, ``all``); one outcome dict (``tid``, ``status``, ``reply``) each.

        Matching waiting tasks are taken off the queue first, so none of them
        starts after this returns; running ones are stopped and answered.
        """
        from weft.client.operating import cancel

        return cancel(self, tid, kill=kill, timeout=timeout, where=where)

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

    def change_marker(self) -> int | None:
        """A marker of the broker's state, for :meth:`wait_for_change`."""
        return self.broker.data_version()

    def wait_for_change(self, marker: int | None, *, timeout: float | None = None) -> int | None:
        """Block until the broker changes after ``marker`` (or ``timeout`` passes);
        return the new marker. Cheap: no query until something was committed."""
        from weft.client.polling import wait_for_change

        return wait_for_change(self.broker, marker, timeout=timeout)

    def metrics(self) -> str:
        """The Prometheus exposition of the whole project, computed from the broker."""
        from weft.metrics.exposition import render

        return render(self.broker)

    # -- jobs -------------------------------------------------------------------
    def job(self, definition: Any, *, overrides: Sequence[str] = (),
            **options: Any) -> Any:
        """Run a job (docs/jobs.md): ``definition`` is a dict, a JobDefinition or a
        TOML/JSON file path; ``overrides`` are ``key=value`` like ``--set``.
        Returns a JobHandle (``.steps``, ``.status()``, ``.wait()``, ``.cancel()``);
        a bad definition raises InvalidSpec before anything is queued."""
        from weft.jobs.handle import definition_of, submit_job

        return submit_job(self, definition_of(definition, tuple(overrides)), **options)

    def job_handle(self, tid: str) -> Any:
        """The JobHandle of an existing job (short TIDs work)."""
        from weft.jobs.handle import JobHandle

        return JobHandle(self, self.resolve_tid(tid))

    def jobs(self) -> list[dict[str, Any]]:
        """Every job (started or queued), oldest first: ``{tid, name, status}``."""
        from weft.jobs.rollup import list_jobs

        return list_jobs(self.broker)

    def job_tree(self, tid: str) -> dict[str, Any]:
        """:meth:`tree`, with a job's children grouped under one node per step."""
        from weft.jobs.rollup import job_tree

        return job_tree(self.broker, self.resolve_tid(tid))

    def job_log(self, tid: str, *, follow: bool = False) -> Iterator[dict[str, Any]] | None:
        """A job's log with every child's entries tagged by step and item (``follow``:
        as they are written, until the job and its children end); None if ``tid``
        is not a job (use :meth:`task_log`)."""
        from weft.jobs.logs import is_job, job_log

        full = self.resolve_tid(tid)
        return job_log(self.broker, full, follow=follow) if is_job(self.broker, full) else None

    def resolve_after(self, after: Any) -> list[str]:
        """Full TIDs of the tasks ``after`` names; InvalidSpec if one is unknown."""
        from weft.client.dependencies import resolve_after

        return resolve_after(self.broker, after)

    # -- fan-out ----------------------------------------------------------------
    def map(self, fn: str | Callable[..., Any], iterable: Iterable[Any], *,
            timeout: float | None = None, max_in_flight: int = 64,
            task_timeout: float | None = None,
            options: Callable[[Any], Mapping[str, Any]] | None = None,
            return_exceptions: bool = False,
            **task_options: Unpack[CommonOptions]) -> Iterator[Any]:
        """Run ``fn(item)`` for each item as its own task; yield values in input order.

        ``timeout`` bounds the whole map (WaitTimeout); ``task_timeout`` is
        each task's own deadline. At most ``max_in_flight`` tasks are queued
        or running at once. ``options(item)`` returns task options for that
        item's task (e.g. ``lambda cfg: {"resources": {"gpus": 1, "vram_mb":
        cfg["vram"]}}``) over the shared ones. The first failure raises
        TaskFailed, or with ``return_exceptions=True`` is yielded in its
        item's place. When iteration stops early (a failure, ``break``),
        the tasks still in flight are stopped.
        """
        from weft.client.fanout import ordered_map

        opts: dict[str, Any] = dict(task_options)
        if task_timeout is not None:
            opts["timeout"] = task_timeout
        per_item = (lambda item: dict(options(item))) if options is not None else None
        return ordered_map(self, fn, iterable, timeout=timeout, max_in_flight=max_in_flight,
                           options=opts, per_item=per_item, return_exceptions=return_exceptions)

    def submit_many(self, specs: Iterable[Mapping[str, Any] | TaskSpec],
                    **common: Any) -> Run:
        """Submit many tasks at once; return a :class:`~weft.client.sweep.Run` handle.

        Each item is a TaskSpec, or a dict of :meth:`submit` arguments
        (``function``/``command``/``args``/``kwargs`` and options) laid over
        ``common``. Every item is checked before any is queued, so bad input
        queues nothing. The Run gives ``.tasks``, ``.results()``,
        ``.as_completed()`` and ``.cancel()``.
        """
        from weft.client.submitting import submit_many
        from weft.client.sweep import Run

        return Run(self, submit_many(self, specs, common))

    def submit_lines(self, lines: Iterable[str], *, shell: bool = False,
                     **common: Any) -> Iterator[list[str]]:
        """Queue one command task per line (``weft submit -``); see :mod:`weft.client.bulk`.

        Every line is checked before this returns (InvalidSpec names the first
        bad line; nothing is queued); the iterator then queues them in
        batches of one transaction each, yielding each batch's TIDs.
        """
        from weft.client.bulk import submit_lines

        return submit_lines(self, lines, shell=shell, **common)

    def watcher(self) -> Dispatcher:
        """The background watcher behind :meth:`Task.add_done_callback` (one per client)."""
        from weft.client.dispatch import Dispatcher

        if self._watcher is None:
            self._watcher = Dispatcher(self.context.root, None)
        return self._watcher

    def as_completed(self, tasks: Iterable[Task], *,
                     timeout: float | None = None) -> Iterator[Task]:
        """Yield each task as it finishes (any status), first finished first."""
        from weft.client.fanout import as_completed

        return as_completed(self, list(tasks), timeout=timeout)

    # -- maintenance ------------------------------------------------------------
    def tidy(self, *, retention: float = 7 * 24 * 3600.0, dry_run: bool = False,
             status: Iterable[str] | None = None) -> dict[str, Any]:
        """Drop finished tasks older than ``retention`` seconds (only those that
        ended in a ``status`` given, e.g. ``["completed"]``), then vacuum."""
        from weft.client.maintenance import tidy

        statuses = None if status is None else frozenset(status)
        return tidy(self.broker, retention=retention, dry_run=dry_run, statuses=statuses)


def init_project(path: str | os.PathLike[str] | None = None, *, backend: str | None = None,
                 dsn: str | None = None, schema: str | None = None,
                 ) -> tuple[_context.Context, bool]:
    """Create a project (``.weft/`` and its broker) in ``path`` or here.

    ``backend="postgres"`` with a ``dsn`` (and optional ``schema``) records
    a PostgreSQL broker in ``.weft/config.json``; it is written only once the
    broker has opened. Returns the context and whether it was created now.
    """
    record = {"broker_backend": backend, "broker_target": dsn, "broker_schema": schema}
    if backend is None and (dsn or schema):
        backend = record["broker_backend"] = "postgres"
    ctx, created = _context.init(path)
    if backend is not None:
        ctx = _context.with_config(ctx, record)
    Broker.open(ctx.root, ctx.settings).close()  # creates the broker; fails before recording
    if backend is not None:
        _context.write_config(ctx.root, record)
    return ctx, created
