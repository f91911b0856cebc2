"""Latency, start-up, bulk submission and idle cost (issue 13's latency targets).

    python benchmarks/latency.py                      # everything (about 2 minutes)
    python benchmarks/latency.py --only cli,api       # some of: cli, api, bulk, idle
    python benchmarks/latency.py --only idle --idle 60 --window 30
    python benchmarks/latency.py --json out.json

- cli: warm ``weft run true``, wall p50/p95 and CPU (user + system) per run,
  over ``--runs`` runs after a first one that starts the manager; beside it
  ``tsp -f true`` when task-spooler is installed (one line says so when not).
  The executable is this interpreter with ``-m weft.cli.main`` (what the
  ``weft`` script runs; a pyenv shim in front of it adds ~80 ms of bash).
- api: warm ``WeftClient.run`` round trips of a no-op command and a no-op
  function, p50/p95, and the client's own CPU per round trip.
- bulk: ``weft submit -`` fed ``--bulk`` lines of ``true``: tasks queued per
  second (wall of the command), and the same from a shell loop of
  ``weft run --no-wait`` for comparison (20 runs).
- idle: a fresh manager left alone ``--quiet`` seconds, then its and its
  launcher's CPU over ``--window`` seconds and their RSS; then, once the
  manager has been idle ``--idle`` seconds in all, the round trip of one
  task (the first after an idle minute, by default).

Every figure is printed with the 1-minute load average beside it: wall
figures move with the machine's load, CPU figures much less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_REPO = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, _REPO)
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [_REPO, os.environ.get("PYTHONPATH", "")]))

NOOP_MODULE = "weft_bench_jobs"
WEFT = [sys.executable, "-m", "weft.cli.main"]
# Commands run as an installed weft runs: with its bytecode cached. (Some
# environments set PYTHONDONTWRITEBYTECODE; then every command recompiles
# weft's modules from source, about 40 ms of a `weft run`.)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _project() -> Path:
    root = Path(tempfile.mkdtemp(prefix="weft-lat-"))
    (root / f"{NOOP_MODULE}.py").write_text("def noop(*a, **k):\n    return None\n")
    return root


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _pct(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"n": len(samples), "p50_ms": round(statistics.median(ordered), 2),
            "p95_ms": pick(0.95), "min_ms": round(ordered[0], 2)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], cwd: Path, stdin: bytes | None = None) -> tuple[float, float, bytes]:
    """(wall ms, CPU ms of the child, stdout) of one command."""
    cpu0 = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, timeout=300,
                          check=False, env=ENV)
    wall = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:5])} failed ({proc.returncode}): "
                         f"{proc.stderr.decode(errors='replace')[-500:]}")
    return wall, (_children_cpu() - cpu0) * 1000, proc.stdout


def _stop_managers(root: Path) -> None:
    subprocess.run([*WEFT, "worker", "stop", "--all"], cwd=root, capture_output=True,
                   timeout=120, check=False, env=ENV)


def bench_cli(runs: int) -> dict[str, Any]:
    root = _project()
    try:
        load0 = _load()
        first, _cpu, _ = _timed([*WEFT, "run", "true"], root)
        _timed([*WEFT, "run", "true"], root)  # bytecode written by now, if it was not
        walls, cpus = [], []
        for _ in range(runs):
            wall, cpu, _ = _timed([*WEFT, "run", "true"], root)
            walls.append(wall)
            cpus.append(cpu)
        out: dict[str, Any] = {"first_run_ms": round(first, 1), "run_true": _pct(walls),
                               "run_true_cpu_ms": round(statistics.median(cpus), 1)}
        help_walls = [_timed([*WEFT, "--help"], root)[0] for _ in range(5)]
        out["help"] = _pct(help_walls)
        bare = [_timed([sys.executable, "-c", "pass"], root)[0] for _ in range(5)]
        out["bare_interpreter_ms"] = round(statistics.median(bare), 1)
        out["tsp"] = _tsp(runs, root)
        out["load"] = [load0, _load()]
        return out
    finally:
        _stop_managers(root)
        shutil.rmtree(root, ignore_errors=True)


def _tsp(runs: int, root: Path) -> dict[str, Any] | str:
    exe = shutil.which("tsp") or shutil.which("ts")
    if exe is None:
        return "task-spooler not installed (apt-get install task-spooler): skipped"
    env_dir = Path(tempfile.mkdtemp(prefix="weft-lat-tsp-"))
    os.environ["TS_SOCKET"] = str(env_dir / "socket")
    try:
        _timed([exe, "-f", "true"], root)  # starts its server
        walls = [_timed([exe, "-f", "true"], root)[0] for _ in range(runs)]
        return {"run_true": _pct(walls)}
    finally:
        subprocess.run([exe, "-K"], capture_output=True, check=False)
        os.environ.pop("TS_SOCKET", None)
        shutil.rmtree(env_dir, ignore_errors=True)


def _client(root: Path) -> Any:
    os.chdir(root)
    from weft import WeftClient

    return WeftClient(root)


def _round_trips(client: Any, n: int, **target: Any) -> tuple[dict[str, float], float]:
    for _ in range(5):
        client.run(wait_timeout=60, **target)
    samples = []
    cpu0 = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        client.run(wait_timeout=60, **target)
        samples.append((time.perf_counter() - start) * 1000)
    return _pct(samples), round((time.process_time() - cpu0) / n * 1000, 2)


def bench_api(n: int) -> dict[str, Any]:
    root = _project()
    client = _client(root)
    try:
        load0 = _load()
        client.workers.ensure_running()
        command, command_cpu = _round_trips(client, n, command=["true"])
        function, function_cpu = _round_trips(client, n, function=f"{NOOP_MODULE}:noop")
        return {"command": command, "command_client_cpu_ms": command_cpu,
                "function": function, "function_client_cpu_ms": function_cpu,
                "load": [load0, _load()]}
    finally:
        client.workers.stop(all=True, timeout=60)
        client.close()
        shutil.rmtree(root, ignore_errors=True)


def bench_bulk(n: int) -> dict[str, Any]:
    root = _project()
    try:
        load0 = _load()
        _timed([*WEFT, "worker", "start"], root)
        # The loop first: after the bulk submission the manager is busy running it.
        loop = [_timed([*WEFT, "run", "--no-wait", "true"], root)[0] for _ in range(20)]
        lines = b"true\n" * n
        wall, cpu, out = _timed([*WEFT, "submit", "-"], root, stdin=lines)
        tids = out.split()
        result: dict[str, Any] = {"lines": n, "tids_printed": len(tids),
                                  "seconds": round(wall / 1000, 3),
                                  "tasks_per_s": round(n / (wall / 1000), 1),
                                  "cpu_ms_per_task": round(cpu / n, 3)}
        result["run_no_wait_loop_tasks_per_s"] = round(1000 / statistics.median(loop), 1)
        result["load"] = [load0, _load()]
        return result
    finally:
        _stop_managers(root)
        shutil.rmtree(root, ignore_errors=True)


def _cpu_of(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def _rss_mb(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def bench_idle(quiet: float, window: float, idle: float) -> dict[str, Any]:
    root = _project()
    client = _client(root)
    try:
        load0 = _load()
        info = client.workers.start()
        pids = [info.pid, int(info.record["launcher_pid"])]
        client.run(command=["true"], wait_timeout=60)  # warm: both processes have run a task
        began = time.monotonic()
        time.sleep(quiet)
        cpu0, t0 = _cpu_of(pids), time.monotonic()
        time.sleep(window)
        share = (_cpu_of(pids) - cpu0) / (time.monotonic() - t0) * 100
        out: dict[str, Any] = {"quiet_s": quiet, "window_s": window,
                               "manager_launcher_cpu_pct": round(share, 3),
                               "manager_rss_mb": _rss_mb(pids[0]),
                               "launcher_rss_mb": _rss_mb(pids[1])}
        time.sleep(max(0.0, idle - (time.monotonic() - began)))
        start = time.perf_counter()
        client.run(command=["true"], wait_timeout=60)
        out["first_task_after_idle_s"] = round(time.monotonic() - began, 1)
        out["first_task_ms"] = round((time.perf_counter() - start) * 1000, 2)
        start = time.perf_counter()
        client.run(command=["true"], wait_timeout=60)
        out["second_task_ms"] = round((time.perf_counter() - start) * 1000, 2)
        out["load"] = [load0, _load()]
        return out
    finally:
        client.workers.stop(all=True, timeout=60)
        client.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="cli,api,bulk,idle",
                        help="comma list of cli, api, bulk, idle")
    parser.add_argument("--runs", type=int, default=20, help="warm `weft run true` runs")
    parser.add_argument("--trips", type=int, default=200, help="API round trips per kind")
    parser.add_argument("--bulk", type=int, default=10000, help="lines fed to `weft submit -`")
    parser.add_argument("--quiet", type=float, default=15.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--idle", type=float, default=60.0,
                        help="seconds idle before the first-task round trip")
    parser.add_argument("--json", metavar="FILE", help="also write the report here")
    args = parser.parse_args()
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    report: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    steps = {"cli": lambda: bench_cli(args.runs), "api": lambda: bench_api(args.trips),
             "bulk": lambda: bench_bulk(args.bulk),
             "idle": lambda: bench_idle(args.quiet, args.window, args.idle)}
    for name, step in steps.items():
        if name in wanted:
            report[name] = step()
            print(json.dumps({name: report[name]}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
