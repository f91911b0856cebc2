"""Every ``WEFT_*`` knob in one typed table.

Values come from the project's ``.weft/config.json`` (written by ``weft
init``; see :mod:`weft.context`) overridden by ``WEFT_*`` environment
variables. A bad value is a usage error naming the variable, never a
traceback deep in the code that first used it.

This is a dataclass, not a pydantic model, because every CLI command reads
it before anything else: importing pydantic costs a short command like
``weft run true`` about a third of its start-up time (docs/performance.md).
The knobs are scalars, so each field's check is one entry of ``_CHECKS``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from weft.errors import InvalidSpec

ENV_PREFIX = "WEFT_"

_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n"}


def _number(kind: type, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, optional: bool = False) -> Callable[[Any], Any]:
    """A check that parses ``kind`` (from a string too) and enforces the bounds."""

    def check(value: Any) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            number = kind(value) if kind is float else _whole(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected {'a number' if kind is float else 'a whole number'}") from None
        if ge is not None and number < ge:
            raise ValueError(f"must be >= {ge:g}")
        if gt is not None and number <= gt:
            raise ValueError(f"must be > {gt:g}")
        if le is not None and number > le:
            raise ValueError(f"must be <= {le:g}")
        return number

    return check


def _whole(value: str | int | float) -> int:
    number = float(value)
    if not number.is_integer():
        raise ValueError(value)
    return int(number)


def _choice(*allowed: str, upper: bool = False) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = str(value).upper() if upper else str(value)
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return check


def _text(optional: bool) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value

    return check


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false (1/0, yes/no, on/off)")


def _simulated_gpus(value: Any) -> str | None:
    """Check the fake cards up front, so a bad value stops the client
    before anything is queued (raises InvalidSpec naming the problem)."""
    value = _text(True)(value)
    if value is not None and value.strip():
        from weft.resources.gpu import SimulatedReader

        SimulatedReader(value)
    return value


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "context": _text(True),
    "manager_idle_timeout": _number(float, ge=0),
    "heartbeat_interval": _number(float, gt=0, le=3600),
    "sync_mode": _choice("FULL", "NORMAL", "OFF", upper=True),
    "busy_timeout_ms": _number(int, ge=0),
    "cache_mb": _number(int, ge=1, le=1024),
    "lock_timeout": _number(float, gt=0, le=3600),
    "broker_backend": _choice("sqlite", "postgres"),
    "broker_target": _text(True),
    "broker_schema": _text(False),
    "gpu_simulate": _simulated_gpus,
    "max_concurrency": _number(int, ge=1, optional=True),
    "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", upper=True),
    "manager_start_timeout": _number(float, gt=0),
    "launcher_preload": _flag,
    "on_finish": _text(True),
    "on_finish_timeout": _number(float, gt=0, le=86400),
    "function_allow": _text(True),
    "allow_pickle": _flag,
    "chunk_kb": _number(int, ge=4, le=1024),
    "max_result_mb": _number(int, ge=1),
    "manager_history_window": _number(float, ge=0),
}


@dataclass(frozen=True)
class Settings:
    """The knobs; constructing one checks and converts every field."""

    context: str | None = field(default=None, metadata={"doc": "project directory to use"})
    manager_idle_timeout: float = field(
        default=600.0, metadata={"doc": "seconds a manager idles before exiting; 0 = never"})
    heartbeat_interval: float = 5.0
    sync_mode: Literal["FULL", "NORMAL", "OFF"] = field(
        default="NORMAL", metadata={"doc": "SQLite synchronous mode (see docs/performance.md)"})
    busy_timeout_ms: int = 5000
    cache_mb: int = field(default=2, metadata={
        "doc": "SQLite page cache per connection; the hot set (queue heads) is small, "
               "and a bigger cache only grows a long-lived manager's memory with queue depth"})
    lock_timeout: float = field(default=30.0, metadata={
        "doc": "seconds to keep retrying while another process holds the broker locked"})
    broker_backend: Literal["sqlite", "postgres"] = "sqlite"
    broker_target: str | None = field(default=None, metadata={"doc": "Postgres DSN"})
    broker_schema: str = field(default="weft", metadata={"doc": "Postgres schema of the project"})
    gpu_simulate: str | None = field(default=None, metadata={"doc": "JSON list of fake GPUs"})
    max_concurrency: int | None = None
    log_level: str = "WARNING"
    manager_start_timeout: float = 10.0
    launcher_preload: bool = field(default=False, metadata={
        "doc": "launcher imports weft's client stack once, for tasks that submit tasks"})
    on_finish: str | None = field(default=None, metadata={
        "doc": "shell command a manager runs when a task ends (WEFT_TID, WEFT_STATUS, "
               "WEFT_EXIT_CODE, WEFT_NAME in its environment); never waited for"})
    on_finish_timeout: float = field(default=30.0, metadata={
        "doc": "seconds an on_finish command may run before it is killed"})
    function_allow: str | None = field(default=None, metadata={
        "doc": "comma list of function target prefixes a manager runs (e.g. 'mypkg.,tasks.'); "
               "unset: any (docs/security.md)"})
    allow_pickle: bool = field(default=True, metadata={
        "doc": "function arguments and results may travel pickled (Python API); "
               "0 refuses them (see docs/python-api.md, Trust)"})
    chunk_kb: int = field(default=1024, metadata={
        "doc": "largest payload (output, result, stdin) carried inside one broker message, KiB; "
               "larger ones go to the blob store"})
    max_result_mb: int = field(default=1024, metadata={
        "doc": "largest function result a task may return, MB; a larger one fails the task "
               "with reason result_too_large"})
    manager_history_window: float = field(default=86400.0, metadata={
        "doc": "seconds a manager, once seen, counts when judging whether a request can "
               "ever run: work only it could run waits (deferred) instead of being rejected"})

    def __post_init__(self) -> None:
        problems = []
        for name, check in _CHECKS.items():
            try:
                object.__setattr__(self, name, check(getattr(self, name)))
            except ValueError as exc:
                problems.append((name, str(exc)))
        if problems:
            raise SettingError(problems)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *,
                 base: Mapping[str, Any] | None = None) -> Settings:
        """``base`` (the project config, by field name) overridden by ``env``."""
        env = os.environ if env is None else env
        raw: dict[str, Any] = {k: v for k, v in (base or {}).items() if k in _CHECKS}
        from_env: set[str] = set()
        for name in _CHECKS:
            value = env.get(ENV_PREFIX + name.upper())
            if value is not None and value != "":
                raw[name] = value
                from_env.add(name)
        try:
            return cls(**raw)
        except SettingError as exc:
            problems = []
            for name, message in exc.problems:
                if name in from_env:
                    problems.append(f"{ENV_PREFIX}{name.upper()}={raw.get(name)!r}: {message}")
                else:
                    problems.append(f"{name}={raw.get(name)!r} in the project config: {message}")
            raise InvalidSpec("bad setting: " + "; ".join(problems)) from None


class SettingError(InvalidSpec):
    """One or more knobs failed their check; ``problems`` names each."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("bad setting: " + "; ".join(f"{n}: {m}" for n, m in problems))
