"""Fan out: one task per item with ``client.map``, or collect as they finish.

    python examples/fanout_map.py

``map`` yields values in input order with at most ``max_in_flight`` tasks
queued or running at once; ``as_completed`` yields tasks as they end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from weft import WeftClient

HERE = Path(__file__).resolve().parent


def cube(x: int) -> int:
    return x * x * x


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def main() -> int:
    with WeftClient() as client:
        started = client.workers.ensure_running()
        try:
            t0 = time.monotonic()
            cubes = list(client.map(cube, range(20), cwd=HERE, timeout=120, max_in_flight=8))
            print(f"cubes: {cubes}")
            print(f"sum: {sum(cubes)} ({len(cubes)} tasks in {time.monotonic() - t0:.2f}s)")

            naps = [client.submit(function=nap, args=[s], cwd=HERE) for s in (0.6, 0.0, 0.3)]
            order = [task.result().value for task in client.as_completed(naps, timeout=60)]
            print(f"finished first to last: {order}")
        finally:
            if started is not None:
                client.workers.stop(started.tid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
