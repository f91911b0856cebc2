"""Classify how a task process ended. Pure: no I/O, no clock.

The ladder below is the whole story of an exit, read top to bottom; each
rung yields one terminal state:

1. weft killed it for its deadline            → timeout   (exit 124)
2. weft killed it for a memory/CPU limit      → killed    (reason, 128+9)
3. someone sent KILL                          → killed    (128+9)
4. someone sent STOP                          → cancelled (128+15)
5. it died without reporting (SIGKILL, OOM)   → failed    (consumer_lost)
6. the target could not start                 → failed    (126/127)
7. the command died of a signal N             → killed    (128+N)
8. the command exited N                       → completed if N == 0 else failed
9. the function returned                      → completed (a large value: its
                                                  blob's reference, value_blob)
10. the function raised                       → failed    (exit 1, traceback)
"""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass
from typing import Any

from weft.models import TaskState


@dataclass(frozen=True)
class Outcome:
    state: TaskState
    exit_code: int | None
    reason: str | None = None
    error: str | None = None
    traceback: str | None = None
    value: Any = None
    signal: int | None = None
    exception: Any = None  # the pickled exception a function raised (see weft.models.values)
    # {"sha256", "size", "encoding"}: the value the task process put in the blob store
    # itself (weft.runtime.result_blob); checked by the host before it is recorded
    value_blob: dict[str, Any] | None = None

    @property
    def retry_key(self) -> str | None:
        """The ``retry_on`` word this outcome matches, if it may be retried."""
        if self.state == TaskState.TIMEOUT:
            return "timeout"
        if self.state == TaskState.FAILED:
            return "consumer_lost" if self.reason == "consumer_lost" else "failed"
        if self.state == TaskState.KILLED and self.reason in ("memory_limit", "cpu_limit"):
            return "killed"
        return None


def signal_name(number: int) -> str:
    try:
        return _signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def classify(frame: dict[str, Any]) -> Outcome:
    """Turn a supervisor ``exit`` frame into an Outcome."""
    killed_for = frame.get("killed_for")
    outcome = frame.get("outcome")
    wait = frame.get("wait") or {}
    if killed_for == "timeout":
        return Outcome(TaskState.TIMEOUT, 124, reason="timeout", error="task exceeded its timeout")
    if killed_for in ("memory_limit", "cpu_limit"):
        what = "memory" if killed_for == "memory_limit" else "CPU time"
        return Outcome(TaskState.KILLED, 137, reason=killed_for,
                       error=f"task exceeded its {what} limit", signal=9)
    if killed_for == "kill":
        return Outcome(TaskState.KILLED, 137, reason="kill", error="killed on request", signal=9)
    if killed_for == "stop":
        return Outcome(TaskState.CANCELLED, 143, reason="stop", error="stopped on request")
    if killed_for == "lost":
        return Outcome(TaskState.FAILED, None, reason="consumer_lost",
                       error="the task's launcher was lost")
    if not isinstance(outcome, dict):
        sig = wait.get("signal")
        how = f"killed by {signal_name(sig)}" if sig else f"exit {wait.get('code')}"
        return Outcome(TaskState.FAILED, 128 + sig if sig else wait.get("code"),
                       reason="consumer_lost",
                       error=f"task process died without reporting a result ({how})", signal=sig)
    return _from_report(outcome)


def _from_report(outcome: dict[str, Any]) -> Outcome:
    if "spawn_error" in outcome:
        return Outcome(TaskState.FAILED, outcome.get("exit_code", 127), reason="spawn_error",
                       error=outcome["spawn_error"])
    if "signal" in outcome:
        sig = int(outcome["signal"])
        return Outcome(TaskState.KILLED, 128 + sig, reason=f"signal {signal_name(sig)}", signal=sig,
                       error=f"killed by {signal_name(sig)}")
    if "error" in outcome:
        return Outcome(TaskState.FAILED, int(outcome.get("exit_code") or 1),
                       reason=outcome.get("reason") or "exception",
                       error=outcome["error"], traceback=outcome.get("traceback"),
                       exception=outcome.get("exception"))
    if "value_blob" in outcome:
        ref = outcome["value_blob"]
        return Outcome(TaskState.COMPLETED, 0, value_blob=ref if isinstance(ref, dict) else {})
    if "value" in outcome:
        return Outcome(TaskState.COMPLETED, 0, value=outcome["value"])
    code = int(outcome.get("exit_code", 0))
    if code == 0:
        return Outcome(TaskState.COMPLETED, 0)
    return Outcome(TaskState.FAILED, code, reason="exit_code", error=f"exited with code {code}")


def lost(reason: str = "consumer_lost", error: str | None = None) -> Outcome:
    return Outcome(TaskState.FAILED, None, reason=reason, error=error or "task process was lost")
