"""The 40-trial sweep of sweep_executor.py, written with asyncio.

``AsyncWeftClient.submit_many`` queues the trials as tasks holding one
(simulated) GPU each; one of them is followed live (``async for chunk in
task.output()``), the rest are awaited as they finish, and once a trial is
good enough ``run.cancel()`` stops every remaining one: the queued ones
never start.
Results are printed in trial order.

    python examples/async_client.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

os.environ["WEFT_GPU_SIMULATE"] = json.dumps([{"name": "Sim A", "memory_mb": 8192},
                                              {"name": "Sim B", "memory_mb": 8192}])

import weft  # noqa: E402 - after the cards are configured

HERE = Path(__file__).resolve().parent
TRIALS = 40
BEST = 10


def train(trial: int) -> dict[str, float]:
    """One simulated training run: prints its epochs, returns a score."""
    for epoch in range(1, 4):
        time.sleep(0.02)
        print(f"trial {trial} epoch {epoch}/3", flush=True)
    return {"lr": round(0.001 * (trial + 1), 4), "score": round(1.0 - abs(trial - BEST) / TRIALS, 3)}


async def sweep(client: weft.AsyncWeftClient) -> list[str]:
    run = await client.submit_many([{"args": [trial], "name": f"trial-{trial}"}
                                    for trial in range(TRIALS)],
                                   function=train, cwd=str(HERE), resources={"gpus": 1})
    followed = "".join([chunk["data"] async for chunk in run.tasks[0].output(timeout=60)])
    print(f"followed trial 0: {' | '.join(followed.splitlines())}")
    async for task in run.as_completed(timeout=120):
        result = await task.wait()
        if result.ok and result.value["score"] >= 0.99:
            await run.cancel()  # queued trials are taken off the queue first, then the running stop
            break
    results = [await task.wait(timeout=60) for task in run.tasks]
    return [_line(trial, result) for trial, result in enumerate(results)]


def _line(trial: int, result: weft.Result) -> str:
    if result.ok:
        return f"trial {trial:02d}  lr={result.value['lr']:.3f} score={result.value['score']:.3f}"
    if result.started_at is None:
        return f"trial {trial:02d}  cancelled before it started"
    return f"trial {trial:02d}  stopped while running"


async def main() -> int:
    async with weft.AsyncWeftClient() as client:  # the project here (made if there is none)
        manager = client.client.workers.start(max_concurrency=4)
        try:
            for line in await sweep(client):
                print(line)
        finally:
            client.client.workers.stop(manager.tid)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
