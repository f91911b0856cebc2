"""The ``on_finish`` hook: a command the manager runs when a task ends.

For desktop notifications or chat messages (pueue calls it a callback).
The project setting ``on_finish`` is a shell command; the manager runs it
through ``/bin/sh -c`` in the manager's working directory with ``WEFT_TID``,
``WEFT_STATUS``, ``WEFT_EXIT_CODE`` (empty when there is none) and
``WEFT_NAME`` in its environment, in its own session, and never waits for
it: dispatch goes on. Hooks still running after ``on_finish_timeout``
seconds are killed (their whole process group); a hook that cannot start,
exits non-zero or is killed is logged as a warning. Nothing a hook does can
end the manager.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

log = logging.getLogger("weft.manager")

MAX_RUNNING = 32  # more hooks than this at once: the oldest are killed, not the manager


@dataclass
class FinishHook:
    command: str
    timeout: float = 30.0
    cwd: str | None = None
    running: list[tuple[subprocess.Popen[bytes], float, str]] = field(default_factory=list)

    def fire(self, tid: str, status: str, exit_code: int | None, name: str | None) -> None:
        """Start the hook for one ended task; never raises, never waits."""
        self.reap()
        env = {**os.environ, "WEFT_TID": tid, "WEFT_STATUS": status,
               "WEFT_EXIT_CODE": "" if exit_code is None else str(exit_code),
               "WEFT_NAME": name or ""}
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", self.command], env=env, cwd=self.cwd,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            log.warning("on_finish for %s could not start: %s", tid, exc)
            return
        self.running.append((proc, time.monotonic() + self.timeout, tid))
        while len(self.running) > MAX_RUNNING:
            self._kill(*self.running.pop(0), why="too many hooks running")

    def reap(self, now: float | None = None) -> None:
        """Collect hooks that ended; kill those past their timeout."""
        now = time.monotonic() if now is None else now
        still = []
        for proc, deadline, tid in self.running:
            code = proc.poll()
            if code is None and now < deadline:
                still.append((proc, deadline, tid))
            elif code is None:
                self._kill(proc, deadline, tid, why=f"timed out after {self.timeout:g}s")
            elif code != 0:
                log.warning("on_finish for %s exited with code %s", tid, code)
        self.running = still

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes], _deadline: float, tid: str, *, why: str) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        log.warning("on_finish for %s killed: %s", tid, why)
