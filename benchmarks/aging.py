"""Does a manager slow down as it ages? CPU per task and RSS over batches on one manager.

    python benchmarks/aging.py [--batches 6] [--tasks 1000]

Starts one manager in a fresh project and runs ``--batches`` batches of
``--tasks`` no-op command tasks (all submitted, then all awaited). After each
batch it prints tasks/s, CPU per task (manager + launcher + task processes +
this client, user + system) and the manager's and launcher's RSS, with the
1-minute load average beside the wall-clock figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

_REPO = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, _REPO)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_REPO, os.environ.get("PYTHONPATH", "")]))

import psutil  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="weft-aging-"))
    os.chdir(root)
    from weft import WeftClient

    client = WeftClient(root)
    try:
        info = client.workers.start()
        client.run(command=["true"], wait_timeout=60)
        manager = psutil.Process(info.pid)
        launcher = psutil.Process(int(info.record["launcher_pid"]))

        def cpu() -> float:
            m, lt = manager.cpu_times(), launcher.cpu_times()
            me = resource.getrusage(resource.RUSAGE_SELF)
            return (m.user + m.system + lt.user + lt.system + lt.children_user
                    + lt.children_system + me.ru_utime + me.ru_stime)

        for batch in range(args.batches):
            c0, t0 = cpu(), time.perf_counter()
            tasks = [client.submit(command=["true"]) for _ in range(args.tasks)]
            for task in tasks:
                task.wait(timeout=600)
            wall, used = time.perf_counter() - t0, cpu() - c0
            print(f"batch {batch + 1}: {args.tasks / wall:.0f} tasks/s (load "
                  f"{os.getloadavg()[0]:.1f}), {used * 1000 / args.tasks:.2f} ms CPU/task, "
                  f"manager {manager.memory_info().rss / 2**20:.1f} MB, "
                  f"launcher {launcher.memory_info().rss / 2**20:.1f} MB", flush=True)
    finally:
        client.workers.stop(all=True, timeout=60)
        client.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
