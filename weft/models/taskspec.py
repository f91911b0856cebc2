"""TaskSpec: what to run, where, with which resources and limits.

The spec is immutable once submitted; everything that changes while a task
lives (state, attempts, pids) is recorded in log events, never in the spec.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from weft.models import rules
from weft.models.rules import TEXT_MAX

SCHEMA_VERSION: Final = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Frozen):
    """What a task reserves on a manager while it runs.

    A task that asks for nothing still takes one of the manager's
    concurrency slots.
    """

    cpus: float = Field(default=0.0, ge=0)
    memory_mb: int = Field(default=0, ge=0)
    gpus: int = Field(default=0, ge=0)
    vram_mb: int = Field(default=0, ge=0, description="per assigned GPU")

    @model_validator(mode="after")
    def _vram_needs_gpu(self) -> Resources:
        rules.vram_needs_gpus(self.vram_mb, self.gpus)
        return self


class Limits(_Frozen):
    """Enforced while the task runs; a violation kills the task's tree.

    ``memory_mb`` defaults to the memory the task reserved (see
    :meth:`TaskSpec.effective_memory_limit`).
    """

    memory_mb: int | None = Field(default=None, ge=1)
    cpu_seconds: float | None = Field(default=None, gt=0)


class RetryPolicy(_Frozen):
    retries: int = Field(default=0, ge=0, le=100)
    delay: float = Field(default=0.0, ge=0)
    backoff: float = Field(default=1.0, ge=1.0)
    retry_on: tuple[str, ...] = ("failed", "timeout", "consumer_lost")

    @field_validator("retry_on")
    @classmethod
    def _known_reasons(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return rules.retry_reasons(value)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2 = first retry)."""
        return self.delay * (self.backoff ** max(0, attempt - 2))


class TaskSpec(_Frozen):
    """A unit of work. Exactly one of ``command`` or ``function`` is set."""

    v: Literal[1] = SCHEMA_VERSION
    tid: str | None = None
    name: str | None = Field(default=None, max_length=TEXT_MAX)
    labels: dict[str, str] = Field(default_factory=dict)
    parent_tid: str | None = None
    request_id: str | None = Field(default=None, max_length=TEXT_MAX)
    group: str | None = None  # None is the group "default" (see docs/cli.md, weft group)

    command: tuple[str, ...] | None = None
    shell: bool = False
    function: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = Field(default_factory=dict)
    # How args, kwargs and the result travel: "json" (plain JSON only), or
    # "pickle" (a value JSON cannot carry is pickled; see weft.models.values).
    serializer: Literal["json", "pickle"] = "json"

    env: dict[str, str] = Field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # names only: the manager supplies the values
    cwd: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    resources: Resources = Field(default_factory=Resources)
    limits: Limits = Field(default_factory=Limits)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    priority: int = Field(default=0, ge=-1000, le=1000)
    stream_output: bool = True
    # Dependencies (docs/jobs.md): TIDs this task waits for, and how their
    # outcomes count: "all" completed, "any" one completed, "finished" all
    # ended whatever the outcome. None when the task waits for nothing.
    after: tuple[str, ...] | None = None
    after_mode: Literal["all", "any", "finished"] | None = None

    @field_validator("tid", "parent_tid")
    @classmethod
    def _tid_shape(cls, value: str | None) -> str | None:
        return rules.tid_shape(value)

    @field_validator("group")
    @classmethod
    def _group_name(cls, value: str | None) -> str | None:
        return rules.group_name(value)
    @field_validator("after")
    @classmethod
    def _after_shape(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return rules.after_tids(value)

    @field_validator("command")
    @classmethod
    def _command_shape(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return rules.command_shape(value)

    @field_validator("function")
    @classmethod
    def _function_shape(cls, value: str | None) -> str | None:
        return rules.function_shape(value)

    @field_validator("env")
    @classmethod
    def _env_shape(cls, value: dict[str, str]) -> dict[str, str]:
        rules.env_names(value)
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return rules.secret_names(value)

    @model_validator(mode="after")
    def _one_target(self) -> TaskSpec:
        rules.one_target(command=self.command, function=self.function, shell=self.shell,
                         args=self.args, kwargs=self.kwargs)
        return self

    @property
    def kind(self) -> str:
        return "command" if self.command is not None else "function"

    @property
    def effective_memory_limit(self) -> int | None:
        return self.limits.memory_mb or (self.resources.memory_mb or None)

    def summary(self) -> str:
        """A short human label: the name, else the target."""
        if self.name:
            return self.name
        if self.command is not None:
            return " ".join(self.command)[:80]
        return str(self.function)
