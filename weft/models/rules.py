"""The checks a TaskSpec makes beyond types and bounds, as plain functions.

:class:`weft.models.taskspec.TaskSpec` calls them from its validators. The
CLI calls them too, through :func:`check_fields`: ``weft run`` builds a
task from click-typed flags and must start in a fraction of the time it
takes to import pydantic, so it checks the rules here and leaves full
validation to the manager, which validates every spawn request it reads.
One set of rules, two callers; tests/test_spec_rules.py holds the two
paths to the same verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

TID_RE: Final = re.compile(r"^\d{19}$")
SECRET_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FUNCTION_RE: Final = re.compile(
    r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
RETRYABLE: Final = ("failed", "timeout", "consumer_lost", "killed")
TEXT_MAX: Final = 200  # name and request_id
AFTER_MODES: Final = ("all", "any", "finished")
AFTER_MAX: Final = 1000


def tid_shape(value: str | None) -> str | None:
    if value is not None and not TID_RE.match(value):
        raise ValueError("must be a 19-digit task id")
    return value


def after_tids(value: Any) -> Any:
    """A dependency list: full TIDs (the client resolves short ones), no repeats."""
    if value is None:
        return value
    if not value:
        raise ValueError("must name at least one task (or be left out)")
    if len(value) > AFTER_MAX:
        raise ValueError(f"at most {AFTER_MAX} dependencies")
    for tid in value:
        tid_shape(tid)
    if len(set(value)) != len(value):
        raise ValueError("names a task twice")
    return value


def after_mode(value: Any) -> None:
    if value is not None and value not in AFTER_MODES:
        raise ValueError(f"must be one of {', '.join(AFTER_MODES)}")


def command_shape(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is not None:
        if not value:
            raise ValueError("must not be empty")
        if any("\x00" in part for part in value):
            raise ValueError("must not contain NUL bytes")
    return value


def function_shape(value: str | None) -> str | None:
    if value is not None and not FUNCTION_RE.match(value):
        raise ValueError("must look like 'package.module:callable'")
    return value


def env_names(value: Mapping[str, str]) -> Mapping[str, str]:
    for key in value:
        if not key or "=" in key or "\x00" in key:
            raise ValueError(f"invalid environment variable name {key!r}")
    return value


def secret_names(value: tuple[str, ...]) -> tuple[str, ...]:
    for name in value:
        if not isinstance(name, str) or not SECRET_RE.match(name):
            raise ValueError(f"invalid secret name {name!r} (letters, digits and _)")
    return value


def retry_reasons(value: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [v for v in value if v not in RETRYABLE]
    if unknown:
        raise ValueError(f"unknown retry reason(s) {unknown}; choose from {list(RETRYABLE)}")
    return value


def vram_needs_gpus(vram_mb: int, gpus: int) -> None:
    if vram_mb and not gpus:
        raise ValueError("vram_mb needs gpus >= 1")


def one_target(*, command: Any, function: Any, shell: bool, args: Any, kwargs: Any) -> None:
    if (command is None) == (function is None):
        raise ValueError("give exactly one of 'command' or 'function'")
    if shell and (command is None or len(command) != 1):
        raise ValueError("shell=True needs a command of exactly one string")
    if function is None and (args or kwargs):
        raise ValueError("args/kwargs are only for function targets")


GROUP_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def group_name(value: str | None) -> str | None:
    if value is not None and not GROUP_RE.match(value):
        raise ValueError("must be 1-64 letters, digits, '_', '.' or '-', starting with a "
                         "letter or digit")
    return value


def text_length(value: str | None) -> str | None:
    if value is not None and len(value) > TEXT_MAX:
        raise ValueError(f"must be at most {TEXT_MAX} characters")
    return value


def check_fields(fields: Mapping[str, Any]) -> list[str]:
    """Every rule above, on a task's fields as plain data of the right types.

    Returns ``["field: problem", ...]``, empty when the fields pass. Types
    and numeric bounds are the caller's to guarantee (click does it for
    the CLI's flags); a TaskSpec checks them again when the manager reads
    the request.
    """
    problems: list[str] = []

    def run(where: str, check: Any, *args: Any, **kwargs: Any) -> None:
        try:
            check(*args, **kwargs)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")

    command = fields.get("command")
    run("tid", tid_shape, fields.get("tid"))
    run("parent_tid", tid_shape, fields.get("parent_tid"))
    run("name", text_length, fields.get("name"))
    run("group", group_name, fields.get("group"))
    run("request_id", text_length, fields.get("request_id"))
    after = fields.get("after")
    run("after", after_tids, tuple(after) if after is not None else None)
    run("after_mode", after_mode, fields.get("after_mode"))
    run("command", command_shape, tuple(command) if command is not None else None)
    run("function", function_shape, fields.get("function"))
    run("env", env_names, fields.get("env") or {})
    run("secrets", secret_names, tuple(fields.get("secrets") or ()))
    retry = fields.get("retry") or {}
    if "retry_on" in retry:
        run("retry.retry_on", retry_reasons, tuple(retry["retry_on"]))
    resources = fields.get("resources") or {}
    run("resources", vram_needs_gpus, resources.get("vram_mb", 0), resources.get("gpus", 0))
    run("(root)", one_target, command=command, function=fields.get("function"),
        shell=bool(fields.get("shell")), args=fields.get("args"), kwargs=fields.get("kwargs"))
    return problems
