"""Where a manager's CPU goes: cProfile of one manager over a batch of no-op tasks.

    python benchmarks/profile_manager.py [--tasks 1000] [--kind command|function] [--top 25]
    python benchmarks/profile_manager.py --tasks 1 --idle 30    # what an idle manager does
    python benchmarks/profile_manager.py --postgres DSN         # on a fresh PostgreSQL schema
    python benchmarks/profile_manager.py --peers 2              # one of three managers

Starts a manager in a fresh project under cProfile (in its own process, the
way ``weft worker start`` would, but not detached), submits ``--tasks``
no-op tasks through the Python API, awaits them all, stops the manager and
prints the functions with the most cumulative and own time. The profile is
written to ``--out`` for ``python -m pstats``. cProfile slows the manager
down (about 1.5-2x), so read shares, not absolute times.
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_REPO = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, _REPO)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_REPO, os.environ.get("PYTHONPATH", "")]))

RUNNER = """
import cProfile, sys
from weft.runtime.manager_main import main
profile = cProfile.Profile()
try:
    profile.runcall(main, sys.argv[2:])
finally:
    profile.dump_stats(sys.argv[1])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--kind", choices=("command", "function"), default="command")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--idle", type=float, default=0.0,
                        help="then leave the manager idle this many seconds (idle cost)")
    parser.add_argument("--peers", type=int, default=0,
                        help="also start this many unprofiled managers on the same broker")
    parser.add_argument("--postgres", metavar="DSN", help="profile on a fresh schema of this database")
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "weft-manager.prof"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="weft-prof-"))
    (root / "bench_noop.py").write_text("def noop(*a, **k):\n    return None\n")
    os.chdir(root)
    sys.path.insert(0, str(root))
    from weft import WeftClient, context

    schema = f"prof_{os.getpid()}" if args.postgres else None
    if args.postgres:
        context.init(root)
        context.write_config(root, {"broker_backend": "postgres", "broker_target": args.postgres,
                                    "broker_schema": schema})

    client = WeftClient(root)
    tid = str(client.broker.generate_id())
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, args.out, "--root", str(root),
                             "--tid", tid, "--options", "{}"])
    try:
        deadline = time.monotonic() + 60
        while not any(w.tid == tid and w.status == "active" for w in client.workers.list()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the profiled manager did not start")
            time.sleep(0.05)  # before any submit: run() would start a second manager
        for _ in range(args.peers):
            client.workers.start()
        client.run(command=["true"], wait_timeout=60)  # warm
        start = time.perf_counter()
        if args.kind == "command":
            tasks = [client.submit(command=["true"]) for _ in range(args.tasks)]
        else:
            tasks = [client.submit(function="bench_noop:noop") for _ in range(args.tasks)]
        for task in tasks:
            task.result(timeout=300)
        print(f"{args.tasks} {args.kind} tasks in {time.perf_counter() - start:.1f}s "
              f"(under cProfile)")
        time.sleep(args.idle)  # an idle manager's own cost
    finally:
        client.workers.stop(all=True, timeout=60)
        proc.wait(timeout=60)
        client.close()
        if args.postgres and schema:
            from weft.broker.postgres import drop_schema

            drop_schema(args.postgres, schema)
        shutil.rmtree(root, ignore_errors=True)
    stats = pstats.Stats(args.out)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
