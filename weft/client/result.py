"""Result: what a finished task left on its outbox, as a typed object.

``stdout``/``stderr`` (text) and ``stdout_bytes``/``stderr_bytes`` (exactly
what the process wrote): a small output (up to 1 MiB, all inline) is read
once and kept in the Result; a larger one is read from the outbox and its
blobs each time it is asked for (so the project must still be there), and a
task that printed gigabytes costs nothing until then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from weft.client.payloads import TaskOutput


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
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    output: TaskOutput | None = field(default=None, repr=False, compare=False)
    #: the value as it travelled, unless it is pickled in the blob store (see wire_value)
    _wire: Any = field(default=None, repr=False, compare=False)
    _read_wire: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def wire_value(self) -> Any:
        """The value as it travelled (JSON; a pickled one as its ``{"$pickle": ...}``
        envelope). A pickle in the blob store is read again, and base64-encoded,
        only when this is asked for: the Result does not hold its bytes twice."""
        return self._read_wire() if self._read_wire is not None else self._wire

    @property
    def stdout_bytes(self) -> bytes:
        """What the task wrote to stdout (its final attempt), exactly."""
        return self.output.read("stdout") if self.output is not None else b""

    @property
    def stderr_bytes(self) -> bytes:
        return self.output.read("stderr") if self.output is not None else b""

    @property
    def stdout(self) -> str:
        """stdout as text (UTF-8; bytes that are not become U+FFFD: use stdout_bytes)."""
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", "replace")

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
    def from_message(cls, message: dict[str, Any], *, output: TaskOutput | None = None,
                     value: Any = None, allow_pickle: bool = True,
                     read_wire: Callable[[], Any] | None = None) -> Result:
        """``value``: the result's value when it was read from the blob store
        (a :class:`~weft.models.values.RawPickle` when it is pickled there, and
        ``read_wire`` reads it again as its envelope for :attr:`wire_value`).

        ``value`` (and ``exception``) are decoded by :mod:`weft.models.values`:
        a pickled value comes back as the object the function returned.
        """
        known: dict[str, Any] = {k: message.get(k) for k in (
            "status", "exit_code", "error", "traceback", "reason", "signal",
            "started_at", "finished_at", "peak_rss_mb", "cpu_time_s", "request_id", "name")}
        raw_value = value if value is not None else message.get("value")
        known["value"] = None
        if raw_value is not None or message.get("exception") is not None:
            known.update(_decoded(message, raw_value, allow_pickle))  # pickle only if needed
        if read_wire is not None:  # do not keep the pickle's bytes beside the value
            raw_value = None
        return cls(tid=str(message["tid"]), attempt=int(message.get("attempt") or 1),
                   output=output, raw=message, _wire=raw_value, _read_wire=read_wire, **known)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


def _decoded(message: dict[str, Any], raw_value: Any, allow_pickle: bool) -> dict[str, Any]:
    """The value and exception, decoded (pickle only when the task's result has one)."""
    from weft.models.values import decode, is_pickled

    known: dict[str, Any] = {"value": decode(raw_value, allow_pickle=allow_pickle,
                                             field=f"the result of task {message.get('tid')}")}
    if is_pickled(message.get("exception")) and allow_pickle:
        try:
            known["exception"] = decode(message["exception"])
        except Exception:  # noqa: BLE001 - the error text still says what happened
            known["exception"] = None
    return known
