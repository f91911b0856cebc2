"""WeftExecutor overhead: calls per second through ``map``, against the plain client.

    python benchmarks/executor.py            # 1,000 calls (the issue's figure)
    python benchmarks/executor.py --calls 200

Rows: ``map`` over no-op calls with ``chunksize=50`` (many calls per task),
``map`` with ``chunksize=1`` (one task per call), and the plain client
submitting the same number of function tasks and waiting for all of them
(``submit`` then ``result``), each in a fresh project with a warm manager.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

MODULE = "weft_exec_bench_jobs"


def _project() -> Path:
    root = Path(tempfile.mkdtemp(prefix="weft-exec-bench-"))
    (root / f"{MODULE}.py").write_text("def noop(x):\n    return x\n")
    return root


def _rate(label: str, calls: int, seconds: float) -> dict[str, float | str]:
    row = {"row": label, "calls": calls, "seconds": round(seconds, 3),
           "calls_per_s": round(calls / seconds, 1)}
    print(f"{label:<34} {calls:>6} calls {seconds:>8.2f} s {calls / seconds:>9.1f} calls/s")
    return row


def measure(calls: int) -> list[dict[str, float | str]]:
    root = _project()
    os.chdir(root)
    sys.path.insert(0, str(root))
    from weft import WeftClient, WeftExecutor

    noop = __import__(MODULE).noop
    rows = []
    with WeftClient(root) as client:
        client.run(function=noop, args=[0], wait_timeout=60)  # warm manager
        try:
            with WeftExecutor(client=client) as ex:
                list(ex.map(noop, range(50), chunksize=50))  # warm the dispatcher
                start = time.perf_counter()
                assert list(ex.map(noop, range(calls), chunksize=50)) == list(range(calls))
                rows.append(_rate("executor map chunksize=50", calls, time.perf_counter() - start))
                start = time.perf_counter()
                assert list(ex.map(noop, range(calls))) == list(range(calls))
                rows.append(_rate("executor map chunksize=1", calls, time.perf_counter() - start))
            start = time.perf_counter()
            tasks = [client.submit(function=noop, args=[i]) for i in range(calls)]
            assert [t.result(timeout=600).value for t in tasks] == list(range(calls))
            rows.append(_rate("client submit + result", calls, time.perf_counter() - start))
        finally:
            client.workers.stop(all=True)
    shutil.rmtree(root, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    measure(args.calls)


if __name__ == "__main__":
    main()
