"""A 40-trial hyperparameter sweep on two GPUs with ``WeftExecutor(gpus=1)``.

The code is the ``concurrent.futures`` code a researcher already writes for
a process pool; each trial becomes a durable weft task holding one GPU. As
soon as one trial is good enough, the trials still queued are cancelled and
the ones running are stopped, so they stop holding GPUs. Results are printed
in trial order. No GPU needed: two cards are simulated with
WEFT_GPU_SIMULATE (a testing and demo aid, docs/resources.md).

    python examples/sweep_executor.py
"""

from __future__ import annotations

import concurrent.futures as cf
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
BEST = 10  # the learning rate of trial 10 is the one that works


def learning_rate(trial: int) -> float:
    return round(0.001 * (trial + 1), 4)


def train(trial: int) -> dict[str, float | str]:
    """One simulated training run: a few short 'epochs', then a score.

    (A real one would report ``weft.current_task().progress(epoch / 3)``;
    left out here because importing weft's client in every trial would
    cost more than this toy trial itself: see docs/python-api.md.)
    """
    time.sleep(0.06)
    score = round(1.0 - abs(trial - BEST) / TRIALS, 3)
    return {"lr": learning_rate(trial), "score": score,
            "gpu": os.environ.get("CUDA_VISIBLE_DEVICES", "?")}


def main() -> int:
    with weft.WeftClient() as client:  # the project here (made if there is none)
        manager = client.workers.start(max_concurrency=4)  # inherits WEFT_GPU_SIMULATE
        try:
            with weft.WeftExecutor(client=client, gpus=1, cwd=str(HERE), name="trial") as ex:
                futures = [ex.submit(train, trial) for trial in range(TRIALS)]
                for future in cf.as_completed(futures):
                    if not future.cancelled() and future.exception() is None \
                            and future.result()["score"] >= 0.99:
                        # Good enough: the queued trials never start, the running stop.
                        ex.cancel_remaining()
                        break
            for trial, future in enumerate(futures):
                print(f"trial {trial:02d}  {_outcome(future)}")
        finally:
            client.workers.stop(manager.tid)
    return 0


def _outcome(future: cf.Future[dict[str, float | str]]) -> str:
    if future.cancelled():
        return "cancelled before it started"
    if future.exception() is not None:
        return "stopped while running"
    r = future.result()
    return f"lr={r['lr']:.3f} score={r['score']:.3f} gpu={r['gpu']}"


if __name__ == "__main__":
    sys.exit(main())
