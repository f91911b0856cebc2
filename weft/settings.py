"""Every ``WEFT_*`` knob in one typed table.

Values come from the project's ``.weft/config.json`` (written by ``weft
init``; see :mod:`weft.context`) overridden by ``WEFT_*`` environment
variables. A bad value is a usage error naming the variable, never a
traceback deep in the code that first used it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from weft.errors import InvalidSpec

ENV_PREFIX = "WEFT_"


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    context: str | None = Field(default=None, description="project directory to use")
    manager_idle_timeout: float = Field(
        default=600.0, ge=0, description="seconds a manager idles before exiting; 0 = never"
    )
    heartbeat_interval: float = Field(default=5.0, gt=0, le=3600)
    sync_mode: Literal["FULL", "NORMAL", "OFF"] = Field(
        default="NORMAL", description="SQLite synchronous mode (see docs/performance.md)"
    )
    busy_timeout_ms: int = Field(default=5000, ge=0)
    cache_mb: int = Field(
        default=2, ge=1, le=1024,
        description="SQLite page cache per connection; the hot set (queue heads) is small, "
        "and a bigger cache only grows a long-lived manager's memory with queue depth",
    )
    lock_timeout: float = Field(
        default=30.0, gt=0, le=3600,
        description="seconds to keep retrying while another process holds the broker locked",
    )
    broker_backend: Literal["sqlite", "postgres"] = "sqlite"
    broker_target: str | None = Field(default=None, description="Postgres DSN")
    broker_schema: str = Field(default="weft", description="Postgres schema of the project")
    gpu_simulate: str | None = Field(default=None, description="JSON list of fake GPUs")
    max_concurrency: int | None = Field(default=None, ge=1)
    log_level: str = "WARNING"
    manager_start_timeout: float = Field(default=10.0, gt=0)
    launcher_preload: bool = Field(
        default=False,
        description="launcher imports weft's client stack once, for tasks that submit tasks",
    )

    @field_validator("gpu_simulate")
    @classmethod
    def _simulated_gpus(cls, value: str | None) -> str | None:
        """Check the fake cards up front, so a bad value stops the client
        before anything is queued (raises InvalidSpec naming the variable)."""
        if value is not None and value.strip():
            from weft.resources.gpu import SimulatedReader

            SimulatedReader(value)
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *,
                 base: Mapping[str, Any] | None = None) -> Settings:
        """``base`` (the project config, by field name) overridden by ``env``."""
        env = os.environ if env is None else env
        raw: dict[str, Any] = dict(base or {})
        from_env: set[str] = set()
        for name in cls.model_fields:
            value = env.get(ENV_PREFIX + name.upper())
            if value is not None and value != "":
                raw[name] = value
                from_env.add(name)
        if isinstance(raw.get("sync_mode"), str):
            raw["sync_mode"] = raw["sync_mode"].upper()
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                field = str(err["loc"][0]) if err.get("loc") else "?"
                if field in from_env:
                    problems.append(f"{ENV_PREFIX}{field.upper()}={raw.get(field)!r}: {err['msg']}")
                else:
                    problems.append(f"{field}={raw.get(field)!r} in the project config: {err['msg']}")
            raise InvalidSpec("bad setting: " + "; ".join(problems)) from None
