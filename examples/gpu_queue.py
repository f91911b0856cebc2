"""Three GPU jobs sharing one simulated 8 GB card, through the Python API.

Two jobs ask for 3000 MB of VRAM each and run side by side; the third asks
for 5000 MB and waits until the card has room. No GPU needed: the card is
simulated with WEFT_GPU_SIMULATE (a testing and demo aid, docs/resources.md).

    python examples/gpu_queue.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

os.environ["WEFT_GPU_SIMULATE"] = json.dumps([{"name": "Sim RTX 4060", "memory_mb": 8192}])

from weft.client.client import WeftClient  # noqa: E402 - after the card is configured

JOB = "echo GPU $CUDA_VISIBLE_DEVICES; sleep 1"


def main() -> int:
    with tempfile.TemporaryDirectory() as project, WeftClient(project) as client:
        manager = client.workers.start(max_concurrency=4)  # inherits WEFT_GPU_SIMULATE
        try:
            tasks = [client.submit(command=["sh", "-c", JOB], name=f"job-{vram}-{i}",
                                   resources={"gpus": 1, "vram_mb": vram})
                     for i, vram in enumerate((3000, 3000, 5000))]
            results = [task.wait(timeout=60) for task in tasks]
        finally:
            client.workers.stop(manager.tid)
    t0 = min(r.started_at for r in results)
    for r in results:
        print(f"{r.name:<12} {r.status:<9} {r.stdout.strip():<6}"
              f" ran {r.started_at - t0:4.1f}s .. {r.finished_at - t0:4.1f}s")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
