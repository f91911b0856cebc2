"""Does a task cost more when the queue is deep, or when several managers share a broker?

    python benchmarks/scale.py depth [--depths 100,5000,50000] [--tasks 1000]
    python benchmarks/scale.py depth --cold     # a manager started with the queue already deep
    python benchmarks/scale.py managers [--managers 1,3] [--tasks 2000] [--postgres DSN]

Issue 13's scale targets: "cost flat from 100 to 50,000 queued (±10 %)" and
"3 managers on one SQLite file deliver at least 1 manager's throughput; 3
managers on PostgreSQL deliver more than 1".

``depth``: for each depth N, a fresh project and one manager, warmed with one
task and then paused (``weft task pause MANAGER``: it stops claiming). The
``--tasks`` measured no-op command tasks are queued first, then N more behind
them (``WeftClient.submit_lines``, one transaction per 500), so the queue holds
N to N + tasks while the measured ones drain. The manager is resumed and the
figures are taken when every measured task has ended.

``managers``: for each count K, a fresh project and K managers started idle,
then ``--tasks`` no-op command tasks queued at once; the figures are taken
when all have ended.

CPU is user + system of the weft processes only (managers, launchers, task
processes: the launchers' reaped children), not this client, whose waiting
is not what grows with depth. It holds still under load; tasks/s does not,
so the 1-minute load average is printed beside it. On PostgreSQL the
server's CPU (postmaster and backends, found through ``$WEFT_CI_PG_CTL``'s
data directory, as ``source .ci/postgres`` sets it) is the ``server`` column,
not part of CPU/task. ``managers`` also prints the managers' broker
operations per task (weft.broker.opstats, read from their heartbeats): a
``move`` above 1 per task is claims lost to a peer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_REPO = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, _REPO)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_REPO, os.environ.get("PYTHONPATH", "")]))

import psutil  # noqa: E402


class Weft:
    """A fresh project (SQLite, or a new PostgreSQL schema) and the managers started in it."""

    def __init__(self, postgres: str | None, server: psutil.Process | None = None) -> None:
        from weft import WeftClient, context

        self.root = Path(tempfile.mkdtemp(prefix="weft-scale-"))
        context.init(self.root)
        self.postgres, self.schema = postgres, None
        if postgres:
            self.schema = f"scale_{os.getpid()}_{time.monotonic_ns()}"
            context.write_config(self.root, {"broker_backend": "postgres",
                                             "broker_target": postgres,
                                             "broker_schema": self.schema})
        self.client = WeftClient(self.root, auto_start=False)
        self.procs: list[tuple[psutil.Process, psutil.Process]] = []
        self.server = server
        self.tids: list[str] = []

    def start_manager(self) -> None:
        info = self.client.workers.start()
        self.tids.append(info.tid)
        self.procs.append((psutil.Process(info.pid),
                           psutil.Process(int(info.record["launcher_pid"]))))

    def cpu(self) -> dict[str, float]:
        """Seconds of CPU so far: managers, launchers, and the task processes they reaped."""
        out = {"manager": 0.0, "launcher": 0.0, "task": 0.0}
        for manager, launcher in self.procs:
            m, lt = manager.cpu_times(), launcher.cpu_times()
            out["manager"] += m.user + m.system
            out["launcher"] += lt.user + lt.system
            out["task"] += lt.children_user + lt.children_system
        if self.server is not None:
            out["server"] = _tree_cpu(self.server)
        return out

    def broker_ops(self) -> dict[str, float]:
        """The managers' broker operations so far (weft.broker.opstats, published with each
        heartbeat: waits for the next one), summed: counts by kind, lock retries and waits."""
        time.sleep(float(self.client.workers.status(self.tids[0]).record
                         .get("heartbeat_interval") or 5) + 0.5)
        out: dict[str, float] = {}
        for tid in self.tids:
            stats = self.client.workers.status(tid).record.get("broker") or {}
            for op, row in (stats.get("ops") or {}).items():
                out[op] = out.get(op, 0) + sum(row["n"])
            for key in ("lock_retries", "lock_wait_s"):
                out[key] = out.get(key, 0) + float(stats.get(key) or 0)
        return out

    def rss_mb(self) -> float:
        return sum(p.memory_info().rss for pair in self.procs for p in pair) / 2**20

    def queue(self, n: int) -> list[str]:
        tids: list[str] = []
        for batch in self.client.submit_lines(["true"] * n):
            tids.extend(batch)
        return tids

    def wait_all(self, tids: list[str]) -> None:
        for tid in tids:
            self.client.task(tid).wait(timeout=900)

    def close(self) -> None:
        try:
            self.client.workers.stop(all=True, timeout=60)
        finally:
            self.client.close()
            if self.schema is not None and self.postgres:
                from weft.broker.postgres import drop_schema

                drop_schema(self.postgres, self.schema)
            shutil.rmtree(self.root, ignore_errors=True)


def _tree_cpu(proc: psutil.Process) -> float:
    """A PostgreSQL server's CPU: the postmaster, its live backends, and those it reaped."""
    t = proc.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in proc.children():
        try:
            c = child.cpu_times()
            total += c.user + c.system
        except psutil.Error:
            pass
    return total


def postgres_server() -> psutil.Process | None:
    """The private server of ``source .ci/postgres`` (its data directory from $WEFT_CI_PG_CTL)."""
    match = re.search(r"-D (\S+)", os.environ.get("WEFT_CI_PG_CTL", ""))
    if match is None:
        return None
    try:
        return psutil.Process(int((Path(match[1]) / "postmaster.pid").read_text().split()[0]))
    except (OSError, ValueError, psutil.Error):
        return None


def _figures(n: int, wall: float, before: dict[str, float], after: dict[str, float]
             ) -> dict[str, Any]:
    per = {k: round((after[k] - before[k]) * 1000 / n, 3) for k in before}
    weft = sum(v for k, v in per.items() if k != "server")
    return {"tasks_per_s": round(n / wall, 1), "cpu_ms": round(weft, 3),
            **{f"{k}_ms": v for k, v in per.items()}, "load": round(os.getloadavg()[0], 2)}


def measure_cold(depth: int, tasks: int, postgres: str | None) -> dict[str, Any]:
    """A manager started with the queue already deep: its start-up and its first task."""
    weft = Weft(postgres, postgres_server() if postgres else None)
    try:
        measured = weft.queue(tasks)
        weft.queue(depth)
        t0 = time.perf_counter()
        weft.start_manager()
        started = time.perf_counter() - t0
        weft.client.task(measured[0]).wait(timeout=900)
        first = time.perf_counter() - t0
        return {"depth": depth, "start_s": round(started, 3), "first_task_s": round(first, 3),
                "weft_cpu_s": round(sum(weft.cpu().values()), 3),
                "load": round(os.getloadavg()[0], 2)}
    finally:
        weft.close()


def measure_depth(depth: int, tasks: int, postgres: str | None) -> dict[str, Any]:
    weft = Weft(postgres, postgres_server() if postgres else None)
    try:
        weft.start_manager()
        weft.client.run(command=["true"], wait_timeout=60)
        manager = weft.client.task(weft.tids[0])
        manager.pause()
        measured = weft.queue(tasks)
        t_fill = time.perf_counter()
        weft.queue(depth)
        fill = time.perf_counter() - t_fill
        time.sleep(1.0)  # let the manager see the queue while paused (its intake, if any)
        before, t0 = weft.cpu(), time.perf_counter()
        manager.resume()
        weft.wait_all(measured)
        row = _figures(tasks, time.perf_counter() - t0, before, weft.cpu())
        return {"depth": depth, **row, "fill_s": round(fill, 2),
                "rss_mb": round(weft.rss_mb(), 1)}
    finally:
        weft.close()


def measure_managers(count: int, tasks: int, postgres: str | None) -> dict[str, Any]:
    weft = Weft(postgres, postgres_server() if postgres else None)
    try:
        for _ in range(count):
            weft.start_manager()
        weft.client.run(command=["true"], wait_timeout=60)
        time.sleep(1.0)
        ops0, before, t0 = weft.broker_ops(), weft.cpu(), time.perf_counter()
        weft.wait_all(weft.queue(tasks))
        row = _figures(tasks, time.perf_counter() - t0, before, weft.cpu())
        ops = {k: round((v - ops0.get(k, 0)) / tasks, 3) for k, v in weft.broker_ops().items()}
        return {"managers": count, "backend": "postgres" if postgres else "sqlite", **row,
                "per_task": ops}
    finally:
        weft.close()


def _print(rows: list[dict[str, Any]], key: str) -> None:
    print(f"{key:>9}{'tasks/s':>9}{'load':>6}{'CPU/task':>10}{'manager':>9}{'launcher':>10}"
          f"{'task':>7}{'server':>8}")
    for r in rows:
        print(f"{r[key]:>9}{r['tasks_per_s']:>9}{r['load']:>6}{r['cpu_ms']:>10}"
              f"{r['manager_ms']:>9}{r['launcher_ms']:>10}{r['task_ms']:>7}"
              f"{r.get('server_ms', '-'):>8}")
    print(json.dumps(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["depth", "managers"])
    parser.add_argument("--depths", default="100,5000,50000")
    parser.add_argument("--managers", default="1,3")
    parser.add_argument("--tasks", type=int, default=None,
                        help="measured tasks per row (default 1000 for depth, 2000 for managers)")
    parser.add_argument("--cold", action="store_true",
                        help="depth: start the manager after queueing; print its start-up "
                             "time, its first task's end and the CPU used until then")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats of every row")
    parser.add_argument("--postgres", metavar="DSN", help="run on a fresh schema of this database")
    args = parser.parse_args()
    os.chdir(tempfile.gettempdir())
    if args.mode == "depth":
        values, key = [int(v) for v in args.depths.split(",")], "depth"
        measure = measure_cold if args.cold else measure_depth
        run: Callable[[int], dict[str, Any]] = lambda n: measure(  # noqa: E731
            n, args.tasks or 1000, args.postgres)
    else:
        values, key = [int(v) for v in args.managers.split(",")], "managers"
        run = lambda k: measure_managers(k, args.tasks or 2000, args.postgres)  # noqa: E731
    rows = []
    for _ in range(args.repeats):
        for value in values:
            rows.append(run(value))
            print(json.dumps(rows[-1]), flush=True)
    if not args.cold:
        _print(rows, key)


if __name__ == "__main__":
    main()
