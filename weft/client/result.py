"""Result: what a finished task left on its outbox, as a typed object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Result:
    tid: str
    status: str
    exit_code: int | None = None
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    exception: BaseException | None = None
    reason: str | None = None
    signal: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    peak_rss_mb: float | None = None
    cpu_time_s: float | None = None
    attempt: int = 1
    request_id: str | None = None
    name: str | None = None
    stdout: str = ""
    stderr: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def cli_exit_code(self) -> int:
        """The exit code ``weft run`` uses for this result."""
        if self.status == "completed":
            return 0
        if self.status == "timeout":
            return 124
        if self.status == "rejected":
            return 2
        if self.exit_code is not None and self.exit_code != 0:
            return self.exit_code
        return 1

    @classmethod
    def from_message(cls, message: dict[str, Any], *, stdout: str = "", stderr: str = "",
                     allow_pickle: bool = True) -> Result:
        """``value`` (and ``exception``) decoded by :mod:`weft.models.values`:
        a pickled value comes back as the object the function returned."""
        from weft.models.values import decode, is_pickled

        known: dict[str, Any] = {k: message.get(k) for k in (
            "status", "exit_code", "error", "traceback", "reason", "signal",
            "started_at", "finished_at", "peak_rss_mb", "cpu_time_s", "request_id", "name")}
        known["value"] = decode(message.get("value"), allow_pickle=allow_pickle,
                                field=f"the result of task {message.get('tid')}")
        if is_pickled(message.get("exception")) and allow_pickle:
            try:
                known["exception"] = decode(message["exception"])
            except Exception:  # noqa: BLE001 - the error text still says what happened
                known["exception"] = None
        return cls(tid=str(message["tid"]), attempt=int(message.get("attempt") or 1),
                   stdout=stdout, stderr=stderr, raw=message, **known)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)
