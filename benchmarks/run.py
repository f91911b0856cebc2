"""weft's benchmark suite: one command, a table and a JSON file.

    python benchmarks/run.py            # full suite (a few minutes on 2 cores)
    python benchmarks/run.py --quick    # smaller counts, for a smoke run
    python benchmarks/run.py --only throughput,latency --huey
    python benchmarks/run.py --peers    # weft beside huey and task-spooler (peers.py)

Every figure is measured through the public Python API or the installed
``weft`` command, in a fresh project directory, with a warm manager unless
the row says otherwise. The machine's own fork rate is measured in the same
run so figures can be read as ratios on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Measure the code of this checkout (not whichever weft is pip-installed), in
# this process and in every manager, launcher and task it starts.
_REPO = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, _REPO)
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [_REPO, os.environ.get("PYTHONPATH", "")]))

from weft.models import SpawnRequest  # noqa: E402
from weft.names import SPAWN_REQUESTS  # noqa: E402

HERE = Path(__file__).resolve().parent
NOOP_MODULE = "weft_bench_jobs"


def _project() -> Path:
    root = Path(tempfile.mkdtemp(prefix="weft-bench-"))
    (root / f"{NOOP_MODULE}.py").write_text("def noop(*a, **k):\n    return None\n")
    return root


def _client(root: Path, **env: str) -> Any:
    os.chdir(root)
    for key, value in env.items():
        os.environ[key] = value
    from weft import WeftClient

    return WeftClient(root)


def _stop(client: Any) -> None:
    try:
        client.workers.stop(all=True, timeout=60)
    except Exception:  # noqa: BLE001 - best effort at the end of a run
        pass
    client.close()


def fork_rate(n: int = 300) -> dict[str, float]:
    """Baseline: fork + exit + wait from this (warm) Python process."""
    start = time.perf_counter()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    per = (time.perf_counter() - start) / n
    return {"fork_exit_wait_ms": round(per * 1000, 3), "forks_per_s": round(1 / per, 1)}


def _throughput(client: Any, n: int, make: Callable[[Any], Any]) -> dict[str, float]:
    start = time.perf_counter()
    tasks = [make(client) for _ in range(n)]
    submitted = time.perf_counter()
    bad = 0
    for task in tasks:
        if task.wait(timeout=600).status != "completed":
            bad += 1
    end = time.perf_counter()
    return {"tasks": n, "seconds": round(end - start, 3),
            "tasks_per_s": round(n / (end - start), 1),
            "submit_per_s": round(n / (submitted - start), 1), "not_completed": bad}


def throughput(n: int) -> dict[str, Any]:
    root = _project()
    client = _client(root)
    try:
        client.workers.ensure_running()
        client.run(command=["true"], wait_timeout=60)  # warm
        commands = _throughput(client, n, lambda c: c.submit(command=["true"]))
        functions = _throughput(client, n, lambda c: c.submit(function=f"{NOOP_MODULE}:noop"))
        return {"commands": commands, "functions": functions}
    finally:
        _stop(client)
        shutil.rmtree(root, ignore_errors=True)


def latency(n: int) -> dict[str, Any]:
    root = _project()
    client = _client(root)
    try:
        client.workers.ensure_running()
        for _ in range(5):
            client.run(function=f"{NOOP_MODULE}:noop", wait_timeout=60)
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            client.run(function=f"{NOOP_MODULE}:noop", wait_timeout=60)
            samples.append((time.perf_counter() - start) * 1000)
        return _percentiles(samples)
    finally:
        _stop(client)
        shutil.rmtree(root, ignore_errors=True)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)
    return {"n": len(samples), "p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "mean_ms": round(statistics.fmean(samples), 2)}


def _weft(*args: str, cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    exe = shutil.which("weft") or sys.executable
    argv = [exe, *args] if exe.endswith("weft") else [exe, "-m", "weft.cli.main", *args]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    return (time.perf_counter() - start) * 1000, proc


def cli(n: int) -> dict[str, Any]:
    root = _project()
    try:
        help_ms = [_weft("--help", cwd=root)[0] for _ in range(10)]
        first_ms, first = _weft("run", "true", cwd=root)
        runs = [_weft("run", "true", cwd=root)[0] for _ in range(n)]
        _weft("worker", "stop", "--all", cwd=root)
        return {"help": _percentiles(help_ms), "first_run_ms": round(first_ms, 1),
                "first_run_ok": first.returncode == 0, "run_true": _percentiles(runs)}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _rss_tree_mb(pids: list[int]) -> float:
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return round(total / 2**20, 1)


def _nth_id(client: Any, n: int) -> int | None:
    """The id of the ``n``-th queued spawn request (1-based), paging from the head."""
    after, seen = None, 0
    while seen < n:
        page = client.broker.peek_many(SPAWN_REQUESTS, min(1000, n - seen), after=after)
        if not page:
            break
        seen += len(page)
        after = page[-1][1]
    return after


def _drain_rate(client: Any, manager_tid: str, depth: int, sample: int) -> float:
    """Tasks/s while the manager claims ``sample`` requests from a queue ``depth`` deep."""
    client.task(manager_tid).pause()
    body = client.build_spec(function=f"{NOOP_MODULE}:noop")
    raw = SpawnRequest(taskspec=body).model_dump_json(exclude_none=True)
    client.broker.write_many([(SPAWN_REQUESTS, raw)] * depth)
    # The queue is FIFO at one priority: ``sample`` requests have been claimed
    # once the head is past the first ``sample``. Looking at the head is O(1);
    # counting the queue is O(depth) (13 ms at 20,000 rows, which, polled ten
    # times a second, cost the deep run about a tenth of its rate).
    beyond = client.broker.peek_many(SPAWN_REQUESTS, 1, after=_nth_id(client, sample))
    stop_at = beyond[0][1] if beyond else None
    time.sleep(1.0)  # setup, not dispatch: let the bulk write's work settle on both cores
    client.task(manager_tid).resume()
    start = time.perf_counter()
    while True:
        head = client.broker.peek_many(SPAWN_REQUESTS, 1)
        if not head or (stop_at is not None and head[0][1] >= stop_at):
            break
        time.sleep(0.005)
    seconds = time.perf_counter() - start
    client.task(manager_tid).pause()
    client.broker.delete_queue(SPAWN_REQUESTS)
    client.task(manager_tid).resume()
    return sample / seconds


def memory_and_depth(depth_small: int, depth_big: int, sample: int,
                     rounds: int = 3) -> dict[str, Any]:
    """Idle RSS, RSS and dispatch throughput with a shallow and a deep queue.

    Shallow and deep runs alternate for ``rounds`` rounds and each reports its
    median: on a shared 2-core VM one run of a few seconds varies by ±15 %,
    more than the effect being measured.
    """
    root = _project()
    client = _client(root)
    try:
        info = client.workers.start()
        pids = [info.pid, int(info.record["launcher_pid"])]
        client.run(command=["true"], wait_timeout=60)
        idle = _rss_tree_mb(pids)
        out: dict[str, Any] = {"idle_manager_and_launcher_rss_mb": idle}
        rates: dict[str, list[float]] = {"shallow": [], "deep": []}
        rss: dict[str, float] = {}
        for _ in range(rounds):
            for label, depth in (("shallow", depth_small), ("deep", depth_big)):
                rates[label].append(_drain_rate(client, info.tid, depth, sample))
                rss[label] = max(rss.get(label, 0.0), _rss_tree_mb([info.pid]))
        for label, depth in (("shallow", depth_small), ("deep", depth_big)):
            out[f"{label}_depth"] = depth
            out[f"{label}_tasks_per_s"] = round(statistics.median(rates[label]), 1)
            out[f"{label}_runs_tasks_per_s"] = [round(r, 1) for r in rates[label]]
            out[f"{label}_manager_rss_mb"] = rss[label]
        out["deep_vs_shallow"] = round(out["deep_tasks_per_s"] / out["shallow_tasks_per_s"] - 1, 3)
        return out
    finally:
        _stop(client)
        shutil.rmtree(root, ignore_errors=True)


def sync_modes(n: int) -> dict[str, Any]:
    """End-to-end throughput of no-op functions under SQLite FULL and NORMAL."""
    out = {}
    for mode in ("NORMAL", "FULL"):
        root = _project()
        client = _client(root, WEFT_SYNC_MODE=mode)
        try:
            client.workers.ensure_running()
            client.run(function=f"{NOOP_MODULE}:noop", wait_timeout=60)
            out[mode] = _throughput(client, n, lambda c: c.submit(function=f"{NOOP_MODULE}:noop"))
        finally:
            _stop(client)
            shutil.rmtree(root, ignore_errors=True)
    os.environ.pop("WEFT_SYNC_MODE", None)
    return out


def huey_side_by_side(n: int) -> dict[str, Any] | None:
    """The same no-op shell and function workloads on huey's SQLite consumer (peers.py), if installed."""
    import peers  # type: ignore[import-not-found]

    if peers.huey_available() is None:
        return None
    out = {}
    for workload in ("shell", "fn"):
        sample = peers.huey_run(n, workload, workers=4)
        out[workload] = {"tasks": n, "tasks_per_s": round(sample.tasks_per_s, 1),
                         "cpu_ms_per_task": round(sample.cpu_ms_per_task, 2), "workers": 4}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--huey", action="store_true", help="also run huey's SQLite consumer")
    parser.add_argument("--peers", action="store_true",
                        help="only the side-by-side table: weft, huey, task-spooler (peers.py)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (--peers)")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per workload (--peers)")
    parser.add_argument("--weft-slots", default="default,2",
                        help="weft rows for --peers: comma-separated slot counts or 'default'")
    parser.add_argument("--json", dest="json_path", default=str(HERE / "results" / "latest.json"))
    args = parser.parse_args()
    quick = args.quick
    only = set(filter(None, args.only.split(",")))
    sys.path.insert(0, str(HERE))
    if args.peers:
        return run_peers(args)

    def want(name: str) -> bool:
        return not only or name in only

    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "fork_baseline": fork_rate(),
    }
    if want("throughput"):
        report["throughput"] = throughput(200 if quick else 1000)
    if want("latency"):
        report["latency_function_roundtrip"] = latency(40 if quick else 200)
    if want("cli"):
        report["cli"] = cli(5 if quick else 20)
    if want("memory"):
        report["memory_depth"] = memory_and_depth(1000 if quick else 1000, 3000 if quick else 20000,
                                                  300 if quick else 1000)
    if want("sync"):
        report["sync_modes"] = sync_modes(200 if quick else 500)
    if args.huey or "huey" in only:
        report["huey"] = huey_side_by_side(200 if quick else 1000)
    report["fork_baseline_after"] = fork_rate()
    Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_path).write_text(json.dumps(report, indent=2))
    _print_table(report)
    print(f"\nJSON: {args.json_path}")


def run_peers(args: argparse.Namespace) -> None:
    import peers  # type: ignore[import-not-found]

    slots = [None if s.strip() == "default" else int(s) for s in args.weft_slots.split(",")]
    result = peers.measure(args.tasks, args.repeats, slots, log=lambda m: print(m, flush=True))
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                         "load_avg": os.getloadavg()}
    path = Path(args.json_path).with_name("peers.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print()
    print(peers.render(result))
    print(f"\nJSON: {path}")


def _print_table(report: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = []

    def flat(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                flat(f"{prefix}.{key}" if prefix else key, value)
        else:
            rows.append((prefix, str(obj)))

    flat("", report)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
