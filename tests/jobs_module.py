"""An importable ``pkg.jobs`` module for Python API tests, written into a project.

Tasks import function targets from their working directory (the project
root in tests), the way ``python -c`` would there.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

JOBS = '''
import os
import pathlib
import time

import weft


def square(x):
    return x * x


def boom():
    raise ValueError("kaboom-42")


def fail_on(x, bad=3):
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def greet(name, punct="!"):
    print("working")
    return f"hello {name}{punct}"


def slow_inverse(x, n=5):
    # later items finish first
    time.sleep((n - x) * 0.05)
    return x


def wait_for_file(path, value=None):
    while not os.path.exists(path):
        time.sleep(0.01)
    return value


def flaky(marker):
    path = pathlib.Path(marker)
    if not path.exists():
        path.write_text("tried")
        raise RuntimeError("first attempt fails")
    return "second time lucky"


def whoami(_item=None):
    me = weft.current_task()
    if me is None:
        return None
    return {"tid": me.tid, "parent_tid": me.parent_tid, "request_id": me.request_id,
            "manager_tid": me.manager_tid, "attempt": me.attempt}


def nested(x=7):
    with weft.WeftClient() as client:
        child = client.submit(function="pkg.jobs:square", args=[x])
        return {"value": child.result(timeout=60).value, "child": child.tid}


def nested_whoami():
    with weft.WeftClient() as client:
        return client.run(function="pkg.jobs:whoami", wait_timeout=60).value
'''


def write_jobs(root: Path) -> Path:
    pkg = root / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "jobs.py").write_text(textwrap.dedent(JOBS))
    return pkg / "jobs.py"
