"""The one home of weft's errors.

Every error a user can meet is a :class:`WeftError`; each class carries the
exit code the CLI uses for it, so the CLI needs exactly one handler::

    WeftError                    exit 1
    ├── UsageError               exit 2   bad arguments, bad TaskSpec, bad knob
    │   └── InvalidSpec          exit 2   a TaskSpec or message failed validation
    ├── ContextError             exit 2   no project context / cannot create one
    ├── BrokerError              exit 3   broker file locked, corrupt or unreachable
    │   └── BlobError            exit 3   a blob is missing or its bytes fail their sha256
    │   └── BrokerUnavailable    exit 3   the broker's server cannot be reached (yet)
    ├── BulkError                exit 3   the broker failed part-way through a bulk
    │                                     submission; ``queued`` tasks were queued
    ├── NotFound                 exit 4   no such task / manager / queue
    │   └── AmbiguousTid         exit 2   short TID matches several tasks
    ├── WaitTimeout              exit 5   a deadline passed while waiting
    ├── TaskRejected             exit 2   no manager seen lately can ever run the task
    ├── ManagerUnavailable       exit 6   no manager could be started or reached
    ├── TaskFailed               exit 1   a task ended failed; carries its Result
    ├── JobFailed                exit 1   a job step failed and its on_error said stop
    └── BrokenTask               exit 1   a WeftExecutor task's process died; also a
                                          concurrent.futures.BrokenExecutor, so it is
                                          defined in weft.client.executor (importing
                                          concurrent.futures here would slow the CLI)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AmbiguousTid",
    "BlobError",
    "BrokerError",
    "BrokerUnavailable",
    "BulkError",
    "ContextError",
    "InvalidSpec",
    "JobFailed",
    "ManagerUnavailable",
    "NotFound",
    "TaskFailed",
    "TaskRejected",
    "UsageError",
    "WaitTimeout",
    "WeftError",
]


class WeftError(Exception):
    """Base of every error weft raises on purpose."""

    exit_code = 1

    def __init__(self, message: str = "", *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(WeftError):
    exit_code = 2


class InvalidSpec(UsageError):
    """A TaskSpec, message or settings value failed validation."""


class ContextError(WeftError):
    exit_code = 2


class BrokerError(WeftError):
    exit_code = 3


class BlobError(BrokerError):
    """A blob is missing, or its bytes do not match its sha256."""
class BrokerUnavailable(BrokerError):
    """The broker's server does not answer: waiters wait it out, others fail at once."""


class NotFound(WeftError):
    exit_code = 4


class AmbiguousTid(NotFound):
    exit_code = 2


class WaitTimeout(WeftError):
    exit_code = 5


class TaskRejected(WeftError):
    exit_code = 2


class ManagerUnavailable(WeftError):
    exit_code = 6


class TaskFailed(WeftError):
    """Raised by ``Task.result()`` when the task did not complete.

    The remote error text and traceback travel with it so a caller can log
    them without another round trip.
    """

    exit_code = 1

    def __init__(self, message: str, *, result: Any = None) -> None:
        super().__init__(message)
        self.result = result
        self.error = getattr(result, "error", None)
        self.traceback = getattr(result, "traceback", None)
        self.status = getattr(result, "status", None)


class BulkError(WeftError):
    """The broker failed part-way (``weft submit``, :mod:`weft.client.bulk`): ``queued``
    tasks (whole batches) are queued, the rest not. Not a BrokerError: the
    batches already committed must not be retried as if nothing had happened."""

    exit_code = 3

    def __init__(self, message: str, queued: int) -> None:
        super().__init__(message)
        self.queued = queued


class JobFailed(WeftError):
    """Raised inside a job's own task so that the job ends ``failed`` (docs/jobs.md)."""

    exit_code = 1


def describe_validation_error(exc: Any, *, what: str) -> str:
    """One line naming each failing field of a pydantic ValidationError."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}")
    text = f"invalid {what}: " + "; ".join(parts)
    return text.replace("\r", "\\r").replace("\n", "\\n")  # always one line
