"""WeftExecutor: weft as a ``concurrent.futures.Executor``.

A program that already hands work to ``ProcessPoolExecutor`` can hand it to
weft instead and get durable, isolated, resource-aware tasks with nothing
else changed: ``submit`` returns a standard ``Future``; ``map``, ``wait``,
``as_completed``, ``shutdown`` and the context manager behave as the
standard library documents them. Each call (or each ``map`` chunk) is one
weft task. This module turns calls into TaskSpecs and outcomes into
future results; :mod:`weft.client.dispatch` is the thread that queues the
tasks and settles the futures.

Where it differs from a process pool (docs/python-api.md lists it): a task
whose process dies breaks only its own future (:class:`BrokenTask`), not the
executor; there is no ``initializer``/``mp_context``; callables and
arguments travel pickled through the broker, so a callable must be
importable by the task (module-level), or picklable (bound methods,
partials), or a lambda/closure with the ``cloudpickle`` extra.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import BrokenExecutor, Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weft.errors import InvalidSpec, TaskFailed, WeftError

if TYPE_CHECKING:
    from weft.client.client import WeftClient
    from weft.client.dispatch import Dispatcher
    from weft.client.result import Result
    from weft.client.task import Task
    from weft.models import TaskSpec

APPLY = "weft.runtime.calls:apply"
APPLY_BATCH = "weft.runtime.calls:apply_batch"
# Outcomes where the task's process died rather than the function failing.
BROKEN_REASONS = ("consumer_lost", "memory_limit", "cpu_limit")


class BrokenTask(WeftError, BrokenExecutor):
    """The process of one executor task died (killed, lost, out of memory).

    Unlike a standard process pool, only that future is broken; the
    executor and its other tasks carry on. ``tid`` names the task.
    """

    def __init__(self, message: str, *, tid: str | None = None, result: Any = None) -> None:
        super().__init__(message)
        self.tid = tid
        self.result = result


class RemoteTraceback(Exception):
    """The traceback text of an exception raised inside a task (set as ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ExecutorOptions:
    """Task options shared by every task of one executor."""

    cpus: float = 0.0
    memory_mb: int = 0
    gpus: int = 0
    vram_mb: int = 0
    timeout: float | None = None
    retries: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    group: str | None = None
    name: str | None = None
    serializer: str = "auto"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def spec_pieces(self, display: str) -> dict[str, Any]:
        resources = {k: v for k, v in (("cpus", self.cpus), ("memory_mb", self.memory_mb),
                                       ("gpus", self.gpus), ("vram_mb", self.vram_mb)) if v}
        pieces: dict[str, Any] = {**self.extra, "name": (self.name or display)[:200],
                                  "request_id": self.group}
        if resources:
            pieces["resources"] = resources
        if self.timeout is not None:
            pieces["timeout"] = self.timeout
        if self.retries is not None:
            pieces["retries"] = self.retries
        if self.labels:
            pieces["labels"] = dict(self.labels)
        return pieces


class WeftExecutor(Executor):
    """Run callables as weft tasks behind the standard ``Executor`` interface.

    ``max_workers`` caps how many of this executor's tasks are queued or
    running in weft at once (None: as many as the managers admit); the rest
    wait here, where ``Future.cancel()`` simply drops them. A future queued
    in weft is cancelled in weft too; a running one cannot be cancelled
    (use :meth:`task_of` and ``stop()``). Task options apply to every task:
    ``cpus``, ``memory_mb``, ``gpus``, ``vram_mb``, ``timeout`` (each task's
    own deadline), ``retries``, ``labels``, ``name`` and ``group`` (the
    request id every task shares, so ``weft status``/``events`` can follow
    the run; one is generated when not given).
    """

    def __init__(self, max_workers: int | None = None, *, client: WeftClient | None = None,
                 path: str | None = None, cpus: float = 0.0, memory_mb: int = 0, gpus: int = 0,
                 vram_mb: int = 0, timeout: float | None = None, retries: int | None = None,
                 labels: Mapping[str, str] | None = None, group: str | None = None,
                 name: str | None = None, serializer: str = "auto",
                 **task_options: Any) -> None:
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        from weft.client.client import WeftClient
        from weft.client.dispatch import Dispatcher

        self._own_client = client is None
        self._client = client or WeftClient(path)
        self.max_workers = max_workers
        self.options = ExecutorOptions(
            cpus=cpus, memory_mb=memory_mb, gpus=gpus, vram_mb=vram_mb, timeout=timeout,
            retries=retries, labels=dict(labels or {}), name=name, serializer=serializer,
            group=group or f"executor-{uuid.uuid4().hex[:12]}", extra=task_options)
        # Checked now, so bad options fail here and not on the first submit.
        self._client.build_spec(function="weft.runtime.calls:apply",
                                **self.options.spec_pieces("check"))
        self._allow_pickle = self._client.context.settings.allow_pickle
        # Open the caller's connection before the dispatcher thread opens its own:
        # simplebroker shares one session per process, and a session first opened
        # by a thread that has ended makes the last close wait out a 5 s timeout.
        self._client.broker  # noqa: B018
        self._dispatcher: Dispatcher = Dispatcher(self._client.context.root, max_workers)
        self._shutdown = False

    @property
    def group(self) -> str:
        """The request id every task of this executor carries."""
        assert self.options.group is not None
        return self.options.group

    # -- the Executor interface --------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Queue ``fn(*args, **kwargs)`` as a weft task; return its Future.

        InvalidSpec at once when ``fn`` or an argument cannot travel (the
        message says which and why).
        """
        spec = self._call_spec(fn, args, kwargs)
        return self._dispatch(spec, batch=False)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[Any]:
        """``fn`` over the zipped iterables; results in order, as ``Executor.map``.

        ``chunksize`` > 1 runs that many calls in one task (much less
        overhead per call). An exception is raised when its item's turn
        comes, after the values before it; ``TimeoutError`` when ``timeout``
        seconds (from this call) pass first.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if chunksize == 1:
            return super().map(fn, *iterables, timeout=timeout)
        end = None if timeout is None else time.monotonic() + timeout
        calls = [tuple(call) for call in zip(*iterables, strict=False)]
        display = f"{display_name(fn)} (map chunk)"
        futures = [self._dispatch(self._spec(APPLY_BATCH, [calls[i:i + chunksize]], {}, display,
                                             callable_=fn), batch=True)
                   for i in range(0, len(calls), chunksize)]
        return _chunk_results(futures, end)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new submits; ``cancel_futures`` cancels every future not yet running
        (their tasks queued in weft are cancelled too); ``wait`` blocks until
        the rest have finished."""
        self._shutdown = True
        self._dispatcher.shutdown(wait=wait, cancel_futures=cancel_futures)
        if self._own_client and wait:
            self._client.close()  # handles (task_of) reconnect if used later

    # -- weft extras --------------------------------------------------------------
    def cancel_remaining(self) -> int:
        """Cancel every future not yet running, then stop the tasks still running.

        Pending futures go first, all at once, so none of their tasks can
        start while the running ones are being stopped (each of those ends
        with TaskFailed, status ``cancelled``). Returns how many were
        cancelled or stopped. The executor stays usable.
        """
        futures = self._dispatcher.unfinished()
        running = [f for f in futures if not f.cancel() and not f.done()]
        for future in running:
            task = self.task_of(future)
            if task is not None:
                try:
                    task.stop()
                except WeftError:
                    continue  # it ended meanwhile
        return len(futures)

    def task_of(self, future: Future[Any]) -> Task | None:
        """The weft Task behind ``future`` (None until it has been queued in weft)."""
        tid = getattr(future, "weft_tid", None)
        return self._client.task(tid) if tid else None

    # -- building tasks -------------------------------------------------------------
    def _dispatch(self, spec: TaskSpec, *, batch: bool) -> Future[Any]:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        return self._dispatcher.add(spec, batch=batch)

    def _call_spec(self, fn: Callable[..., Any], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> TaskSpec:
        if not callable(fn):
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        reference = importable(fn, os.fspath(self.options.extra.get("cwd") or os.getcwd()))
        if reference is not None:
            return self._spec(reference, list(args), kwargs, reference)
        return self._spec(APPLY, list(args), kwargs, display_name(fn), callable_=fn)

    def _spec(self, function: str, args: list[Any], kwargs: dict[str, Any], display: str,
              callable_: Any = None) -> TaskSpec:
        """The TaskSpec of one call; ``callable_`` (no import path) travels pickled
        as the first argument of ``function``. Fields are named as the caller sees them."""
        from weft.client.specs import build_spec
        from weft.models.values import encode, encode_call

        encoded_args, encoded_kwargs, wire = encode_call(
            args, kwargs, serializer=self.options.serializer,  # type: ignore[arg-type]
            allow_pickle=self._allow_pickle)
        if callable_ is not None:
            if wire != "pickle":
                raise InvalidSpec(f"fn: {display} has no import path, and "
                                  "serializer='json' (or WEFT_ALLOW_PICKLE=0) forbids pickling it")
            encoded_args.insert(0, encode(callable_, serializer="pickle", field="fn"))
        return build_spec(function=function, args=encoded_args, kwargs=encoded_kwargs,
                          serializer=wire, **self.options.spec_pieces(display))


def importable(fn: Callable[..., Any], cwd: str) -> str | None:
    """``module:qualname`` when the task can import ``fn`` by name, else None."""
    if not isinstance(fn, types.FunctionType | types.BuiltinFunctionType | type):
        return None
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    owner = getattr(fn, "__self__", None)
    if not module or "<" in qualname or (owner is not None and owner is not sys.modules.get(module)):
        return None
    if module == "__main__":
        from weft.client.fields import _qualname

        return _qualname(fn, cwd)
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return f"{module}:{qualname}" if target is fn else None


def display_name(fn: Any) -> str:
    """A short name for a callable: ``module:qualname``, ``partial(...)`` and so on."""
    if isinstance(fn, functools.partial):
        return f"partial({display_name(fn.func)})"
    inner = getattr(fn, "__func__", fn)
    module = getattr(inner, "__module__", None) or type(fn).__module__
    qualname = getattr(inner, "__qualname__", None) or type(fn).__qualname__
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        module = Path(main_file).stem if main_file else module
    return f"{module}:{qualname}"


def outcome_exception(result: Result) -> BaseException:
    """What ``Future.result()`` raises for a task that did not complete."""
    cause = RemoteTraceback(result.traceback) if result.traceback else None
    if result.exception is not None:
        exc = result.exception
        exc.__cause__ = cause
        return exc
    if result.reason in BROKEN_REASONS or (result.reason or "").startswith("signal"):
        what = f"task {result.tid}" + (f" ({result.name})" if result.name else "")
        return BrokenTask(f"the process of {what} died: {result.error or result.status}",
                          tid=result.tid, result=result)
    detail = result.error or result.reason or f"exit code {result.exit_code}"
    failed = TaskFailed(f"task {result.tid} {result.status}: {detail}", result=result)
    failed.__cause__ = cause
    return failed


def _chunk_results(futures: list[Future[Any]], end: float | None) -> Iterator[Any]:
    """Yield each chunk's values in order; raise a failed call at its own position."""
    try:
        futures.reverse()
        while futures:
            future = futures.pop()
            try:
                outcomes = future.result(None if end is None else end - time.monotonic())
            except BaseException:
                future.cancel()
                raise
            for outcome in outcomes:
                if outcome[0] == "ok":
                    yield outcome[1]
                else:
                    exc = outcome[1]
                    exc.__cause__ = RemoteTraceback(outcome[2])
                    raise exc
    finally:
        for future in futures:
            future.cancel()
