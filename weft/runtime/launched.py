"""One task process as the launcher tracks it, from fork to report.

Kept apart from :mod:`weft.runtime.supervisor` (which forks, watches and
reaps) so the record's fields read in one place: what was launched, the
pipes still open, how and when it ended, what it used, and why weft killed
it if it did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from weft.runtime.result_pipe import ResultPipe
from weft.runtime.stdin_pipe import StdinPipe


@dataclass
class Proc:
    tid: str
    pid: int
    launch: dict[str, Any]
    started_at: float
    deadline: float | None
    fds: dict[int, str] = field(default_factory=dict)
    result: ResultPipe = field(default_factory=lambda: ResultPipe(None))
    stdin: StdinPipe | None = None
    go_fd: int | None = None  # write end of the go-ahead pipe, until the start is on record
    status: int | None = None
    rusage: Any = None
    killed_for: str | None = None
    kill_at: float | None = None
    reaped_at: float | None = None
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    next_sample: float = 0.0

    @property
    def done(self) -> bool:
        return self.status is not None and not self.fds


def now_or_never(proc: Proc) -> bool:
    """Sample tasks without limits only when they run long enough to matter."""
    return time.time() - proc.started_at < 1.0
