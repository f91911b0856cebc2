"""Scheduling delay of a dependent task after its last dependency finishes.

    python benchmarks/dependencies.py [--pairs 200] [--background 0]

Starts a manager in a fresh project and, ``--pairs`` times, submits a no-op
task A and a task B with ``after=[A]``, then waits for B. The delay is the
time from A's end (``finished_at`` of its result, stamped when the manager
learns the process exited) to B being claimed (the ``ts`` of B's
``task_spawning`` event): what the dependency adds, since a task without
dependencies would be claimed at the same step. ``--background N`` keeps N
other dependents waiting on a long task meanwhile, so the resolver has work
that does not become ready. Prints median, p95 and max in milliseconds as
JSON; the target is at most 5 ms (docs/jobs.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _spawning_ts(task: Any) -> float:
    return min(e["ts"] for e in task.events() if e["event"] == "task_spawning")


def measure(client: Any, pairs: int, background: int) -> dict[str, Any]:
    blocker = client.submit(command=["sleep", "600"]) if background else None
    waiting = [client.submit(command=["true"], after=[blocker]) for _ in range(background)]
    delays = []
    for _ in range(pairs):
        first = client.submit(command=["sleep", "0.05"])  # B waits before A ends
        second = client.submit(command=["true"], after=[first])
        second.result(timeout=60)
        delays.append((_spawning_ts(second) - first.wait().finished_at) * 1000)
    if blocker is not None:
        blocker.stop()
        for task in waiting:
            task.wait(timeout=60)
    delays.sort()
    return {"pairs": pairs, "background_waiting": background,
            "median_ms": round(statistics.median(delays), 2),
            "p95_ms": round(delays[int(0.95 * (len(delays) - 1))], 2),
            "max_ms": round(delays[-1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--background", type=int, default=0)
    args = parser.parse_args()
    from weft.client.client import WeftClient

    home = Path(tempfile.mkdtemp(prefix="weft-bench-deps-"))
    try:
        with WeftClient(home) as client:
            client.workers.start()
            try:
                report = measure(client, args.pairs, args.background)
            finally:
                for worker in client.workers.list():
                    client.workers.stop(worker.tid)
        print(json.dumps(report))
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
