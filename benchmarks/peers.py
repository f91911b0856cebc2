"""weft beside huey and task-spooler, measured in one run: tasks/s and CPU per task.

    python benchmarks/run.py --peers [--repeats 3] [--tasks 1000]

Each system runs the same workloads: ``--tasks`` no-op tasks, all submitted,
then all awaited. "shell" is the command ``true`` in a process of its own;
"fn" is a no-op Python function (weft: a process per task; huey: run inside
its pooled worker). Repeats are interleaved (weft, huey, tsp, weft, ...) so a
burst of load on this shared machine lands on every system alike; each cell
is a median with its min–max.

CPU is user + system time of *every* process involved, the client included:
this process makes itself a child subreaper, so every daemon and job a
system starts (weft's detached manager, tsp's forked server and job runners)
stays a descendant; a descendant's CPU is read live through psutil and, once
it exits, through this process's ``RUSAGE_CHILDREN``. Unlike wall time,
CPU per task holds still however busy the machine is.

Each service (weft manager, huey consumer, tsp server) is started fresh for
every repeat and warmed with one task; start-up is not counted.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

PR_SET_CHILD_SUBREAPER = 36
NOOP_MODULE = "peers_noop"
WAIT_LIMIT = 180.0  # seconds for one batch to finish; a run past it is reported failed


@dataclass
class Sample:
    tasks_per_s: float
    cpu_ms_per_task: float


# -- measuring ----------------------------------------------------------------
def become_subreaper() -> bool:
    """Orphans of our descendants become ours, so their CPU is counted when they end."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _reap_orphans(keep: set[int]) -> None:
    """Reap exited descendants that no Popen waits for (tsp's runners, a manager)."""
    for child in psutil.Process().children():
        if child.pid in keep:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.NoSuchProcess, ChildProcessError):
            pass


def tree_cpu(keep: set[int] = frozenset()) -> float:  # type: ignore[assignment]
    """Seconds of CPU used so far by this process and every descendant, live or reaped."""
    _reap_orphans(set(keep))
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    for proc in psutil.Process().children(recursive=True):
        try:
            t = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def timed(n: int, submit_all: Callable[[], Any], await_all: Callable[[Any], None],
          keep: set[int] = frozenset()) -> Sample:  # type: ignore[assignment]
    cpu0, t0 = tree_cpu(keep), time.perf_counter()
    await_all(submit_all())
    t1 = time.perf_counter()
    cpu1 = tree_cpu(keep)
    return Sample(n / (t1 - t0), (cpu1 - cpu0) * 1000 / n)


# -- weft ---------------------------------------------------------------------
@contextmanager
def weft_service(slots: int | None) -> Iterator[Any]:
    root = Path(tempfile.mkdtemp(prefix="peers-weft-"))
    (root / f"{NOOP_MODULE}.py").write_text("def noop(*a, **k):\n    return None\n")
    cwd = os.getcwd()
    os.chdir(root)
    sys.path.insert(0, str(root))
    from weft import WeftClient

    client = WeftClient(root)
    try:
        client.workers.start(max_concurrency=slots)
        client.run(command=["true"], wait_timeout=60)
        yield client
    finally:
        try:
            client.workers.stop(all=True, timeout=60)
        finally:
            client.close()
            os.chdir(cwd)
            sys.path.remove(str(root))
            shutil.rmtree(root, ignore_errors=True)


def weft_run(n: int, workload: str, slots: int | None) -> Sample:
    with weft_service(slots) as client:
        if workload == "shell":
            def submit() -> list[Any]:
                return [client.submit(command=["true"]) for _ in range(n)]
        else:
            def submit() -> list[Any]:
                return [client.submit(function=f"{NOOP_MODULE}:noop") for _ in range(n)]

        def wait(tasks: list[Any]) -> None:
            deadline = time.monotonic() + WAIT_LIMIT
            bad = [t for t in tasks
                   if t.wait(timeout=max(0.1, deadline - time.monotonic())).status != "completed"]
            if bad:
                raise RuntimeError(f"weft: {len(bad)} tasks did not complete")

        return timed(n, submit, wait)


# -- huey ---------------------------------------------------------------------
HUEY_APP = textwrap.dedent('''
    import subprocess
    from huey import SqliteHuey

    huey = SqliteHuey(filename={db!r}, store_none=True)

    @huey.task()
    def shell():
        return subprocess.run(["true"]).returncode

    @huey.task()
    def fn():
        return None
''')


def huey_available() -> str | None:
    try:
        import huey
    except ImportError:
        return None
    return str(huey.__version__)


def huey_run(n: int, workload: str, workers: int = 2) -> Sample:
    root = Path(tempfile.mkdtemp(prefix="peers-huey-"))
    module = f"hueyapp_{root.name.replace('-', '_')}"
    (root / f"{module}.py").write_text(HUEY_APP.format(db=str(root / "huey.db")))
    consumer = subprocess.Popen(
        [sys.executable, "-c",
         f"import {module} as app; app.huey.create_consumer(workers={workers}, "
         "worker_type='process', periodic=False, initial_delay=0.001, max_delay=0.01).run()"],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sys.path.insert(0, str(root))
    try:
        app = __import__(module)
        task = getattr(app, workload)
        task().get(blocking=True, timeout=60)  # warm

        def submit() -> list[Any]:
            return [task() for _ in range(n)]

        def wait(results: list[Any]) -> None:
            deadline = time.monotonic() + WAIT_LIMIT
            for r in results:
                r.get(blocking=True, timeout=max(0.1, deadline - time.monotonic()),
                      backoff=1.0, max_delay=0.01)

        return timed(n, submit, wait, keep={consumer.pid})
    finally:
        consumer.terminate()
        try:
            consumer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            consumer.kill()
            consumer.wait()
        sys.path.remove(str(root))
        sys.modules.pop(module, None)
        shutil.rmtree(root, ignore_errors=True)


# -- task-spooler ---------------------------------------------------------------
def tsp_binary() -> str | None:
    """``tsp`` (Debian's name) or ``ts``, if it is task-spooler (moreutils has a ``ts`` too)."""
    for name in ("tsp", "ts"):
        path = shutil.which(name)
        if path:
            out = subprocess.run([path, "-V"], capture_output=True, text=True)
            if "task spooler" in (out.stdout + out.stderr).lower():
                return path
    return None


def tsp_version(exe: str) -> str:
    out = subprocess.run([exe, "-V"], capture_output=True, text=True)
    words = (out.stdout + out.stderr).split()
    return next((w.lstrip("v") for w in words if w[:1] in "v0123456789" and "." in w), "?")


def tsp_run(n: int, exe: str, slots: int = 2) -> Sample:
    root = Path(tempfile.mkdtemp(prefix="peers-tsp-"))
    env = {**os.environ, "TS_SOCKET": str(root / "sock"), "TMPDIR": str(root),
           "TS_MAXFINISHED": str(n + 10), "TS_SLOTS": str(slots)}

    def tsp(*args: str) -> str:
        return subprocess.run([exe, *args], env=env, capture_output=True, text=True,
                              check=True).stdout

    try:
        tsp("-S", str(slots))
        tsp("-w", tsp("true").strip())  # warm

        def submit() -> str:
            return [tsp("true") for _ in range(n)][-1].strip()

        def wait(last: str) -> None:
            tsp("-w", last)
            while any(w in tsp("-l") for w in (" running ", " queued ")):
                time.sleep(0.01)

        return timed(n, submit, wait)
    finally:
        subprocess.run([exe, "-K"], env=env, capture_output=True)
        tree_cpu()  # reaps the server
        shutil.rmtree(root, ignore_errors=True)


# -- the table --------------------------------------------------------------------
def systems(weft_slots: list[int | None]) -> tuple[list[tuple[str, str, Callable[[int], Sample]]],
                                                   list[str]]:
    """(row, workload, run) for every available system, and one line per skipped peer."""
    runs: list[tuple[str, str, Callable[[int], Sample]]] = []
    skipped: list[str] = []
    exe = tsp_binary()
    if exe:
        runs.append((f"task-spooler {tsp_version(exe)}, 2 slots", "shell",
                     lambda n: tsp_run(n, exe)))
    else:
        skipped.append("task-spooler: skipped (no tsp or ts on PATH; apt-get install task-spooler)")
    version = huey_available()
    if version:
        for workload in ("shell", "fn"):
            runs.append((f"huey {version}, SQLite, 2 process workers", workload,
                         lambda n, w=workload: huey_run(n, w)))
    else:
        skipped.append("huey: skipped (not installed; pip install 'weft[bench]')")
    for slots in weft_slots:
        label = "weft, default slots" if slots is None else f"weft, {slots} slots"
        for workload in ("shell", "fn"):
            runs.append((label, workload, lambda n, w=workload, s=slots: weft_run(n, w, s)))
    return runs, skipped


def measure(n: int, repeats: int, weft_slots: list[int | None],
            log: Callable[[str], None]) -> dict[str, Any]:
    if not become_subreaper():
        log("warning: could not become a child subreaper; detached processes' CPU is missed")
    runs, skipped = systems(weft_slots)
    for line in skipped:
        log(line)
    samples: dict[tuple[str, str], list[Sample]] = {(r, w): [] for r, w, _ in runs}
    loads = []
    for i in range(repeats):
        for row, workload, run in runs:
            try:
                s = run(n)
            except Exception as exc:  # noqa: BLE001 - one failed cell must not end the run
                log(f"repeat {i + 1}/{repeats} {row} {workload}: failed ({type(exc).__name__}: "
                    f"{exc}); not counted")
                continue
            samples[(row, workload)].append(s)
            loads.append(os.getloadavg()[0])
            log(f"repeat {i + 1}/{repeats} {row} {workload}: {s.tasks_per_s:.0f} tasks/s, "
                f"{s.cpu_ms_per_task:.2f} ms CPU/task (load {loads[-1]:.1f})")
    cells = {f"{row}|{w}": _cell(ss) for (row, w), ss in samples.items() if ss}
    return {"tasks": n, "repeats": repeats, "skipped": skipped, "cells": cells,
            "load_avg_1m": {"min": min(loads, default=0), "max": max(loads, default=0)}}


def _cell(samples: list[Sample]) -> dict[str, Any]:
    rates = [s.tasks_per_s for s in samples]
    cpus = [s.cpu_ms_per_task for s in samples]
    return {"tasks_per_s": round(statistics.median(rates), 1),
            "tasks_per_s_min": round(min(rates), 1), "tasks_per_s_max": round(max(rates), 1),
            "cpu_ms": round(statistics.median(cpus), 2),
            "cpu_ms_min": round(min(cpus), 2), "cpu_ms_max": round(max(cpus), 2)}


def render(result: dict[str, Any]) -> str:
    cells = result["cells"]
    rows = list(dict.fromkeys(key.split("|")[0] for key in cells))

    def fmt(key: str) -> tuple[str, str]:
        c = cells.get(key)
        if c is None:
            return "—", "—"
        return (f"{c['tasks_per_s']:.0f} ({c['tasks_per_s_min']:.0f}–{c['tasks_per_s_max']:.0f})",
                f"{c['cpu_ms']:.2f} ms ({c['cpu_ms_min']:.2f}–{c['cpu_ms_max']:.2f})")

    lines = [f"{result['tasks']} no-op tasks, all submitted then all awaited; "
             f"{result['repeats']} interleaved repeats, median (min–max); "
             f"1-min load {result['load_avg_1m']['min']:.1f}–{result['load_avg_1m']['max']:.1f}",
             "",
             "| system | shell tasks/s | CPU per shell task | fn tasks/s | CPU per fn task |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append("| " + " | ".join([row, *fmt(f"{row}|shell"), *fmt(f"{row}|fn")]) + " |")
    lines += ["", *ratios(cells)]
    return "\n".join(lines)


def ratios(cells: dict[str, Any]) -> list[str]:
    """The issue's targets as ratios of medians from this run."""
    def rate(prefix: str, workload: str) -> float | None:
        for key, c in cells.items():
            if key.startswith(prefix) and key.endswith(f"|{workload}"):
                return float(c["tasks_per_s"])
        return None

    out = []
    weft_shell, weft_fn = rate("weft, default", "shell"), rate("weft, default", "fn")
    checks = [("weft shell / huey shell", weft_shell, rate("huey", "shell"), 1.2),
              ("weft shell / task-spooler", weft_shell, rate("task-spooler", "shell"), 1.0),
              ("weft fn / huey fn", weft_fn, rate("huey", "fn"), 0.8)]
    for name, ours, theirs, target in checks:
        if ours and theirs:
            ratio = ours / theirs
            out.append(f"{name}: {ratio:.2f}× (target ≥ {target}×: "
                       f"{'met' if ratio >= target else 'not met'})")
    for workload in ("shell", "fn"):
        c = cells.get(f"weft, default slots|{workload}")
        if c:
            out.append(f"weft CPU per {workload} task: {c['cpu_ms']:.2f} ms (target ≤ 3 ms: "
                       f"{'met' if c['cpu_ms'] <= 3 else 'not met'})")
    return out
