"""WeftExecutor against the standard library's documented Executor semantics.

The spec is the ``concurrent.futures`` documentation: submit (``fn`` is
positional-only), map (order, zip-shortest, timeout from the iterator,
exception at its item's position, chunksize), shutdown (wait,
cancel_futures, no submits after), wait/as_completed interop, cancel of a
future that has not started, max_workers validation, and no stale
references to callables or results. Plus what weft adds: the original
exception type with the remote traceback as ``__cause__``, a dead task
process as a BrokenExecutor naming the task, and the executor-wide task
options. Every task is a real task of a real manager.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import gc
import importlib
import operator
import sys
import textwrap
import threading
import time
import weakref

import pytest
from conftest import wait_for

from weft import InvalidSpec, TaskFailed
from weft.client.executor import BrokenTask, RemoteTraceback, WeftExecutor

EXJOBS = '''
import os
import signal
import time


def square(x):
    return x * x


def add(x, y):
    return x + y


def keywords(*args, **kwargs):
    return [list(args), kwargs]


def nap(seconds, value=None):
    time.sleep(seconds)
    return value


def span(seconds):
    start = time.time()
    time.sleep(seconds)
    return (start, time.time())


def fail_on(x, bad=3):
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


class Custom(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def raise_custom(code):
    raise Custom(code)


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("will not pickle")


def raise_unpicklable():
    raise Unpicklable("only the text survives")


def die():
    os.kill(os.getpid(), signal.SIGKILL)


class Box:
    def __init__(self, n):
        self.n = n

    def times(self, k):
        return self.n * k


class Payload:
    def __init__(self, size):
        self.data = b"x" * size


def payload(size):
    return Payload(size)
'''


@pytest.fixture
def ex_jobs(project, monkeypatch):
    pkg = project.root / "expkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "exjobs.py").write_text(textwrap.dedent(EXJOBS))
    monkeypatch.syspath_prepend(str(project.root))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module("expkg.exjobs")
    finally:
        for name in ("expkg.exjobs", "expkg"):
            sys.modules.pop(name, None)


@pytest.fixture
def executor(client, ex_jobs):
    ex = WeftExecutor(client=client)
    try:
        yield ex
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def one_at_a_time(monkeypatch):
    """The project's manager runs one task at a time, so later ones stay queued in weft."""
    monkeypatch.setenv("WEFT_MAX_CONCURRENCY", "1")


# -- submit ---------------------------------------------------------------------
def test_submit_returns_a_standard_future(executor, ex_jobs):
    future = executor.submit(ex_jobs.square, 7)
    assert isinstance(future, cf.Future)
    assert future.result(timeout=60) == 49
    assert future.done() and not future.running() and not future.cancelled()
    assert future.exception() is None


def test_fn_is_positional_only(executor, ex_jobs):
    with pytest.raises(TypeError):
        executor.submit(fn=ex_jobs.square)  # type: ignore[call-arg]
    # A keyword argument named ``fn`` goes to the function, as the ABC says.
    assert executor.submit(ex_jobs.keywords, 1, fn=2).result(timeout=60) == [[1], {"fn": 2}]
    with pytest.raises(TypeError, match="not callable"):
        executor.submit(3)  # type: ignore[arg-type]


def test_callables_of_every_kind(executor, ex_jobs):
    box = ex_jobs.Box(6)
    assert executor.submit(pow, 2, 10).result(timeout=60) == 1024  # builtin
    assert executor.submit(functools.partial(ex_jobs.add, 10), 5).result(timeout=60) == 15
    assert executor.submit(box.times, 7).result(timeout=60) == 42  # bound method
    assert executor.submit(operator.itemgetter(1), "abc").result(timeout=60) == "b"
    base = 100
    assert executor.submit(lambda x: x + base, 1).result(timeout=60) == 101  # cloudpickle


def test_a_closure_without_cloudpickle_is_invalid_spec_saying_why(executor, monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # as if not installed
    with pytest.raises(InvalidSpec, match="cloudpickle"):
        executor.submit(lambda: 1)
    with pytest.raises(InvalidSpec, match=r"args\[0\]: cannot pickle a _thread.lock"):
        executor.submit(print, threading.Lock())


# -- map ----------------------------------------------------------------------------
@pytest.mark.parametrize("chunksize", [1, 3])
def test_map_keeps_order_and_zips_to_the_shortest(executor, ex_jobs, chunksize):
    assert list(executor.map(ex_jobs.square, range(8), chunksize=chunksize)) == [
        x * x for x in range(8)]
    assert list(executor.map(ex_jobs.add, [1, 2, 3], [10, 20], chunksize=chunksize)) == [11, 22]
    assert list(executor.map(ex_jobs.square, [], chunksize=chunksize)) == []


@pytest.mark.parametrize("chunksize", [1, 2, 10])
def test_map_raises_at_the_failing_items_position(executor, ex_jobs, chunksize):
    results = executor.map(ex_jobs.fail_on, range(6), chunksize=chunksize)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="bad item 3") as info:
        next(results)
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "fail_on" in str(info.value.__cause__)


@pytest.mark.parametrize("chunksize", [1, 2])
def test_map_timeout_is_raised_by_the_iterator(executor, ex_jobs, chunksize):
    results = executor.map(ex_jobs.nap, [0.0, 2.0], timeout=0.5, chunksize=chunksize)
    started = time.monotonic()
    with pytest.raises(cf.TimeoutError):
        list(results)
    assert time.monotonic() - started < 20


def test_map_chunksize_must_be_positive(executor, ex_jobs):
    with pytest.raises(ValueError):
        executor.map(ex_jobs.square, [1], chunksize=0)


def test_chunks_run_as_fewer_tasks(client, ex_jobs):
    with WeftExecutor(client=client, group="chunky") as ex:
        assert list(ex.map(ex_jobs.square, range(10), chunksize=5)) == [x * x for x in range(10)]
    assert len(client.tasks(request_id="chunky")) == 2


# -- wait / as_completed ----------------------------------------------------------------
def test_wait_and_as_completed_work_with_its_futures(executor, ex_jobs):
    slow = executor.submit(ex_jobs.nap, 30.0, "slow")
    fast = executor.submit(ex_jobs.nap, 0.0, "fast")
    done, not_done = cf.wait([slow, fast], timeout=60, return_when=cf.FIRST_COMPLETED)
    assert done == {fast} and not_done == {slow}
    bad = executor.submit(ex_jobs.fail_on, 3)
    done, _ = cf.wait([slow, bad], timeout=60, return_when=cf.FIRST_EXCEPTION)
    assert bad in done and slow not in done
    order = [f.result() for f in cf.as_completed([executor.submit(ex_jobs.nap, 0.4, "b"),
                                                  executor.submit(ex_jobs.nap, 0.0, "a")],
                                                 timeout=60)]
    assert order == ["a", "b"]
    with pytest.raises(cf.TimeoutError):
        list(cf.as_completed([slow], timeout=0.2))
    executor.task_of(slow).kill()


# -- cancel and shutdown -----------------------------------------------------------------
def test_cancel_of_a_task_queued_in_weft_cancels_it_there(project, client, ex_jobs, monkeypatch):
    one_at_a_time(monkeypatch)
    with WeftExecutor(client=client) as ex:
        blocker = ex.submit(ex_jobs.nap, 30.0)
        queued = ex.submit(ex_jobs.square, 3)
        wait_for(lambda: blocker.running(), timeout=30, what="the blocker to run")
        wait_for(lambda: ex.task_of(queued), timeout=10, what="the second task in weft")
        assert queued.cancel() and queued.cancelled()
        assert not blocker.cancel()  # running futures cannot be cancelled
        task = ex.task_of(queued)
        assert task.wait(timeout=30).status == "cancelled"
        done, _ = cf.wait([queued], timeout=5)
        assert done == {queued}
        ex.task_of(blocker).kill()
        with pytest.raises(TaskFailed):
            blocker.result(timeout=30)


def test_shutdown_cancel_futures_and_no_new_submits(client, ex_jobs):
    ex = WeftExecutor(1, client=client)
    first = ex.submit(ex_jobs.nap, 0.5, "first")
    later = [ex.submit(ex_jobs.square, i) for i in range(5)]
    wait_for(lambda: first.running(), timeout=30, what="the first task to run")
    ex.shutdown(wait=True, cancel_futures=True)
    assert first.result(timeout=0) == "first"
    assert all(f.cancelled() for f in later)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(ex_jobs.square, 1)


def test_shutdown_wait_blocks_until_everything_finished(client, ex_jobs):
    with WeftExecutor(client=client) as ex:
        futures = [ex.submit(ex_jobs.nap, 0.2, i) for i in range(3)]
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [0, 1, 2]


def test_max_workers_is_validated_and_limits_running_tasks(client, ex_jobs):
    for bad in (0, -1):
        with pytest.raises(ValueError):
            WeftExecutor(bad, client=client)
    with WeftExecutor(1, client=client) as ex:
        spans = sorted(ex.map(ex_jobs.span, [0.3, 0.3, 0.3]))
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end


# -- references ----------------------------------------------------------------------------
def test_no_stale_references_to_callables_or_results(executor, ex_jobs):
    box = ex_jobs.Box(2)
    collected = threading.Event()
    ref = weakref.ref(box, lambda _: collected.set())
    future = executor.submit(box.times, 3)
    del box
    gc.collect()
    assert collected.wait(5) and ref() is None, "the executor holds the submitted callable"
    assert future.result(timeout=60) == 6
    future = executor.submit(ex_jobs.payload, 10)
    result_ref = weakref.ref(future.result(timeout=60))
    del future
    gc.collect()
    assert result_ref() is None, "the executor holds a result"


# -- errors ----------------------------------------------------------------------------------
def test_exceptions_keep_their_type_with_the_remote_traceback(executor, ex_jobs):
    with pytest.raises(ex_jobs.Custom) as info:
        executor.submit(ex_jobs.raise_custom, 7).result(timeout=60)
    assert info.value.code == 7
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "raise Custom(code)" in info.value.__cause__.text
    with pytest.raises(TaskFailed, match="only the text survives") as failed:
        executor.submit(ex_jobs.raise_unpicklable).result(timeout=60)
    assert "Unpicklable" in str(failed.value.__cause__)


def test_a_dead_process_is_a_broken_executor_naming_the_task(executor, ex_jobs):
    future = executor.submit(ex_jobs.die)
    with pytest.raises(cf.BrokenExecutor) as info:
        future.result(timeout=60)
    assert isinstance(info.value, BrokenTask)
    assert info.value.tid == future.weft_tid and future.weft_tid in str(info.value)
    # Only that future broke: the executor carries on.
    assert executor.submit(ex_jobs.square, 2).result(timeout=60) == 4


# -- options -----------------------------------------------------------------------------------
def test_executor_wide_task_options(project, client, ex_jobs):
    with WeftExecutor(client=client, cpus=0.5, memory_mb=64, timeout=1.0, retries=0,
                      labels={"team": "a"}, group="grp-1", name="trial") as ex:
        ok = ex.submit(ex_jobs.square, 5)
        late = ex.submit(ex_jobs.nap, 30.0)
        assert ok.result(timeout=60) == 25
        with pytest.raises(TaskFailed) as info:
            late.result(timeout=60)
    assert info.value.status == "timeout"
    [request] = [e for e in project.events(ok.weft_tid) if e["event"] == "task_spawning"]
    assert request["resources"] == {"cpus": 0.5, "memory_mb": 64, "gpus": 0, "vram_mb": 0}
    status = client.task(ok.weft_tid).status()
    assert status["name"] == "trial" and status["request_id"] == "grp-1"
    with pytest.raises(InvalidSpec, match="vram_mb"):
        WeftExecutor(client=client, vram_mb=100)
