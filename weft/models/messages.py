"""The messages weft puts on the broker (ARCHITECTURE.md §3).

Every model forbids unknown fields so a typo in a hand-written message is
reported, not silently dropped. Every message carries ``v``, the schema
version.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from weft.models.taskspec import SCHEMA_VERSION, TaskSpec

CONTROL_COMMANDS = ("PING", "STATUS", "STOP", "KILL", "PAUSE", "RESUME")


class _Message(BaseModel):
    # Built on first use: most processes validate only one or two of these,
    # and building every schema at import costs the CLI's start-up time.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    v: Literal[1] = SCHEMA_VERSION


class SpawnRequest(_Message):
    """Written by a client to ``weft.spawn.requests``; its message id is the TID."""

    taskspec: TaskSpec
    inbox_message: Any = None
    # "stream": the task's stdin arrives on T{tid}.stdin (chunks, then an EOF message)
    stdin: Literal["stream"] | None = None
    request_id: str | None = None
    not_before: float | None = None
    attempt: int = Field(default=1, ge=1)


class LogEvent(_Message):
    """One line of ``weft.tasks.log``: a state change of one task or manager."""

    event: str
    tid: str
    status: str
    ts: float
    manager_tid: str | None = None
    pid: int | None = None
    host: str | None = None
    request_id: str | None = None
    parent_tid: str | None = None
    name: str | None = None
    target: str | None = None
    attempt: int | None = None
    exit_code: int | None = None
    reason: str | None = None
    error: str | None = None
    resources: dict[str, Any] | None = None
    gpus: list[int] | None = None
    not_before: float | None = None
    details: dict[str, Any] | None = None


class RegistryRecord(_Message):
    """A manager's entry in ``weft.workers.registry``; newest row per tid wins."""

    tid: str
    role: Literal["manager"] = "manager"
    status: Literal["active", "orphaned", "stopped"]
    host: str
    pid: int
    pid_create_time: float | None = None
    started_at: float
    heartbeat_at: float
    heartbeat_interval: float = 5.0
    queues: dict[str, str] = Field(default_factory=dict)
    capabilities: dict[str, Any] = Field(default_factory=dict)
    load: dict[str, Any] = Field(default_factory=dict)
    version: str = ""
    idle_timeout: float | None = None
    name: str | None = None
    metrics_addr: str | None = None
    stop_reason: str | None = None
    launcher_pid: int | None = None
    launcher_create_time: float | None = None
    paused: bool = False


class ControlRequest(_Message):
    command: str
    request_id: str | None = None
    reason: str | None = None

    @field_validator("command")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.strip().upper()


class ControlReply(_Message):
    request_id: str | None = None
    tid: str
    command: str | None = None
    ok: bool = True
    status: str
    pid: int | None = None
    reply: str | None = None
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class JobRecord(_Message):
    """One line of ``weft.jobs.progress``: what a job has planned or submitted.

    ``kind`` is ``plan`` (the job's name and step order), ``items`` (how many
    items a fan-out step has) or ``child`` (step ``item`` was submitted as
    task ``tid``, written in the same transaction as that task's request).
    """

    job: str
    kind: Literal["plan", "items", "child"]
    name: str | None = None
    steps: list[str] | None = None
    step: str | None = None
    item: int | None = None
    count: int | None = None
    tid: str | None = None


class StreamChunk(_Message):
    type: Literal["stream"] = "stream"
    stream: Literal["stdout", "stderr"]
    seq: int
    data: str = ""
    encoding: Literal["base64"] | None = None  # absent: ``data`` is the UTF-8 text
    blob: dict[str, Any] | None = None  # {"sha256", "size"}: the bytes are in the blob store
    attempt: int = 1


class ResultMessage(_Message):
    """The last message on a task's outbox."""

    type: Literal["result"] = "result"
    tid: str
    status: str
    exit_code: int | None = None
    value: Any = None
    # {"sha256", "size", "encoding"}: a large value is in the blob store (``value`` null)
    value_blob: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None
    exception: Any = None  # pickled exception (serializer "pickle"; see weft.models.values)
    reason: str | None = None
    signal: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    peak_rss_mb: float | None = None
    cpu_time_s: float | None = None
    attempt: int = 1
    request_id: str | None = None
    name: str | None = None
