"""What a launcher remembers of the tasks it launched, for an orphan host.

If the manager dies, the launcher's orphan host (:mod:`weft.runtime.orphan`)
must not run again an attempt this launcher already forked, and should record
the reports the manager received but had not yet written. So the launcher
keeps, per task, the attempt it launched and, once the task ended, its report.

Both matter only until the manager has recorded the task, and the manager
records every exit it reads before it launches more: the launches and reports
it has not recorded are at most about twice the tasks it runs at once. So the
memory is bounded by a multiple of the most tasks ever running together, not
by a large fixed count: keeping 10,000 reports with their launch ops grew the
launcher by 6.5 MB per 1,000 tasks, up to 65 MB, and every fork from the
bigger process cost more (docs/performance.md). A launch whose task is still
running is never forgotten, however long it runs.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

KEEP_MIN = 256  # finished launches and reports kept, at least
KEEP_PER_RUNNING = 4  # ... and this many per task running at the busiest moment
RECENT_RESULTS = 64 << 20  # bytes of recent results kept, at most


class LaunchMemory:
    def __init__(self) -> None:
        self.launched: dict[str, int] = {}  # tid -> attempt, oldest first
        self.recent: dict[str, tuple[Any, dict[str, Any]]] = {}  # tid -> (proc, exit frame)
        self._recent_bytes = 0
        self.peak_running = 0

    @property
    def keep(self) -> int:
        return max(KEEP_MIN, KEEP_PER_RUNNING * self.peak_running)

    def launch(self, tid: str, attempt: int, running: Collection[str]) -> None:
        """``tid``'s ``attempt`` was forked; ``running`` holds every task still running."""
        self.peak_running = max(self.peak_running, len(running))
        self.launched.pop(tid, None)
        self.launched[tid] = attempt
        rotated = 0
        while len(self.launched) > self.keep and rotated < len(self.launched):
            oldest = next(iter(self.launched))
            kept = self.launched.pop(oldest)
            if oldest in running:  # still running: never forgotten; look at it last
                self.launched[oldest] = kept
                rotated += 1

    def report(self, proc: Any, frame: dict[str, Any], size: int) -> None:
        """``proc`` ended with ``frame``; ``size`` bytes of result come with it."""
        self.recent[proc.tid] = (proc, frame)
        self._recent_bytes += size
        while len(self.recent) > self.keep or (
                self._recent_bytes > RECENT_RESULTS and len(self.recent) > 1):
            old, _ = self.recent.pop(next(iter(self.recent)))
            self._recent_bytes -= old.result.size
