"""Checks a submit can make on the submitting host, before anything is queued.

A TaskSpec's own rules say what a task *may* be; these say what the caller
can already tell will fail: a timeout that is not a finite number, a
working directory that does not exist. On a single-host (SQLite) project
the submitting host is the one that runs the task, so a missing ``cwd``
is refused here instead of failing the task with exit 126 later. On a
shared (PostgreSQL) broker the task may run on another host whose
directories this one cannot see, so the check is skipped there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from weft.errors import InvalidSpec


def check_submit(fields: Mapping[str, Any], *, backend: str) -> None:
    """Raise InvalidSpec (exit 2) naming the first problem found."""
    timeout = fields.get("timeout")
    if isinstance(timeout, float) and not math.isfinite(timeout):
        raise InvalidSpec(f"invalid task spec: timeout: must be a finite number of seconds, "
                          f"got {timeout!r}")
    cwd = fields.get("cwd")
    if backend == "sqlite" and cwd is not None and not os.path.isdir(cwd):
        raise InvalidSpec(f"invalid task spec: cwd: no such directory {os.fspath(cwd)!r}")
