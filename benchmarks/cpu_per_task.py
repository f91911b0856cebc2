"""Where a task's time goes: CPU (user + system) per task, by process.

    python benchmarks/cpu_per_task.py [--tasks 1000]

Starts a manager in a fresh project, submits ``--tasks`` no-op command tasks
(then as many no-op function tasks) through the Python API without waiting,
collects every result, and divides the CPU each process used by the number
of tasks: the manager, its launcher, the task processes (the launcher's reaped
children) and this client. CPU time holds up better than wall time on a
shared machine; the sum over the two cores bounds the throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Measure the code of this checkout (not whichever weft is pip-installed), in
# this process and in every manager, launcher and task it starts.
_REPO = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, _REPO)
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [_REPO, os.environ.get("PYTHONPATH", "")]))

import psutil  # noqa: E402


def _cpu(proc: psutil.Process) -> tuple[float, float]:
    times = proc.cpu_times()
    return times.user + times.system, times.children_user + times.children_system


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(client: Any, manager: psutil.Process, launcher: psutil.Process, kind: str,
            n: int) -> dict[str, float]:
    submit = ((lambda: client.submit(command=["true"])) if kind == "command"
              else (lambda: client.submit(function="bench_noop:noop")))
    m0, l0, c0, t0 = _cpu(manager), _cpu(launcher), _client_cpu(), time.perf_counter()
    tasks = [submit() for _ in range(n)]
    for task in tasks:
        task.result(timeout=300)
    m1, l1, c1, t1 = _cpu(manager), _cpu(launcher), _client_cpu(), time.perf_counter()

    def per_task(seconds: float) -> float:
        return round(seconds * 1000 / n, 2)

    return {"tasks_per_s": round(n / (t1 - t0), 1),
            "manager_ms": per_task(m1[0] - m0[0]), "launcher_ms": per_task(l1[0] - l0[0]),
            "task_process_ms": per_task(l1[1] - l0[1]), "client_ms": per_task(c1 - c0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="weft-cpu-"))
    (root / "bench_noop.py").write_text("def noop(*a, **k):\n    return None\n")
    os.chdir(root)
    sys.path.insert(0, str(root))
    from weft import WeftClient

    client = WeftClient(root)
    try:
        info = client.workers.start()
        client.run(command=["true"], wait_timeout=60)  # warm
        manager = psutil.Process(info.pid)
        launcher = psutil.Process(int(info.record["launcher_pid"]))
        report = {kind: measure(client, manager, launcher, kind, args.tasks)
                  for kind in ("command", "function")}
    finally:
        client.workers.stop(all=True, timeout=60)
        client.close()
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'per task (ms CPU)':<18}{'manager':>9}{'launcher':>10}{'task':>7}{'client':>8}"
          f"{'tasks/s':>9}")
    for kind, row in report.items():
        print(f"{kind:<18}{row['manager_ms']:>9}{row['launcher_ms']:>10}"
              f"{row['task_process_ms']:>7}{row['client_ms']:>8}{row['tasks_per_s']:>9}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
