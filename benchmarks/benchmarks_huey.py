"""The same no-op shell workload on huey's SQLite queue, for a side-by-side ratio.

huey is a pool: a few long-lived worker processes each run many jobs, so a
job costs a subprocess spawn but no fresh worker process. weft gives every
task its own process (and process group); this measures what that costs us
relative to a pool on the same machine in the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

APP = textwrap.dedent('''
    import subprocess
    from huey import SqliteHuey

    huey = SqliteHuey(filename={db!r}, store_none=True)

    @huey.task()
    def shell_true():
        return subprocess.run(["true"]).returncode

    @huey.task()
    def noop():
        return None
''')


def run_huey(n: int, workers: int = 4) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="huey-bench-"))
    (root / "hueyapp.py").write_text(APP.format(db=str(root / "huey.db")))
    env = {**os.environ, "PYTHONPATH": str(root)}
    consumer = subprocess.Popen(
        [sys.executable, "-c",
         f"import hueyapp; c = hueyapp.huey.create_consumer(workers={workers},"
         " worker_type='process', periodic=False, initial_delay=0.001, max_delay=0.01); c.run()"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sys.path.insert(0, str(root))
    try:
        import hueyapp  # type: ignore[import-not-found]

        out = {}
        for name in ("shell_true", "noop"):
            task = getattr(hueyapp, name)
            task().get(blocking=True, timeout=30)  # warm
            start = time.perf_counter()
            results = [task() for _ in range(n)]
            for r in results:
                r.get(blocking=True, timeout=300, backoff=1.0, max_delay=0.01)
            seconds = time.perf_counter() - start
            out[name] = {"tasks": n, "seconds": round(seconds, 3),
                         "tasks_per_s": round(n / seconds, 1), "workers": workers}
        return out
    finally:
        consumer.terminate()
        try:
            consumer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            consumer.kill()
            consumer.wait()
