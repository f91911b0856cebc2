"""Task lifecycle states and the transitions allowed between them.

The table is the contract of ARCHITECTURE.md §4: terminal states never
change, and every state change emits one log event.
"""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"
    SPAWNING = "spawning"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    KILLED = "killed"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {
        TaskState.COMPLETED,
        TaskState.FAILED,
        TaskState.TIMEOUT,
        TaskState.CANCELLED,
        TaskState.KILLED,
        TaskState.REJECTED,
    }
)

_ENDINGS = {
    TaskState.COMPLETED,
    TaskState.FAILED,
    TaskState.TIMEOUT,
    TaskState.CANCELLED,
    TaskState.KILLED,
}

TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset(
        {TaskState.DEFERRED, TaskState.SPAWNING, TaskState.REJECTED, TaskState.CANCELLED}
    ),
    TaskState.DEFERRED: frozenset(
        {TaskState.QUEUED, TaskState.SPAWNING, TaskState.REJECTED, TaskState.CANCELLED}
    ),
    # A spawn can fail before the target runs (bad cwd, unknown executable).
    # Back to QUEUED is a retry: the attempt ended and another is scheduled.
    TaskState.SPAWNING: frozenset({TaskState.RUNNING, TaskState.QUEUED, *_ENDINGS}),
    TaskState.RUNNING: frozenset({TaskState.PAUSED, TaskState.QUEUED, *_ENDINGS}),
    TaskState.PAUSED: frozenset({TaskState.RUNNING, TaskState.QUEUED, *_ENDINGS}),
    **{state: frozenset() for state in TERMINAL},
}


def can_transition(src: TaskState, dst: TaskState) -> bool:
    return dst in TRANSITIONS[src]
