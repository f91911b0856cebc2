"""Turning the pieces a caller gives (CLI flags, keyword arguments, a spec
file) into one validated TaskSpec. Pure: no broker, no project needed, so
bad input is refused before anything is created or queued.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from weft.errors import InvalidSpec, describe_validation_error
from weft.models import Resources, TaskSpec

SPEC_FIELDS = (
    "name",
    "labels",
    "env",
    "cwd",
    "timeout",
    "resources",
    "limits",
    "retry",
    "priority",
    "stream_output",
    "shell",
)


def build_spec(
    *,
    command: Sequence[str] | str | None = None,
    function: str | None = None,
    spec: TaskSpec | Mapping[str, Any] | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    **fields: Any,
) -> TaskSpec:
    """Validate the pieces of a task into a TaskSpec; InvalidSpec names the field."""
    unknown = set(fields) - set(SPEC_FIELDS)
    if unknown:
        raise InvalidSpec(f"unknown task option(s): {', '.join(sorted(unknown))}")
    base: dict[str, Any] = {}
    if spec is not None:
        base = spec.model_dump(exclude_unset=True) if isinstance(spec, TaskSpec) else dict(spec)
        base.pop("tid", None)
    if command is not None:
        base["command"] = [command] if isinstance(command, str) else list(command)
        if isinstance(command, str) and not fields.get("shell"):
            base["command"] = command.split()
    if function is not None:
        base["function"] = function if isinstance(function, str) else _qualname(function)
    if args:
        base["args"] = list(args)
    if kwargs:
        base["kwargs"] = dict(kwargs)
    for key, value in fields.items():
        if value is not None:
            base[key] = value.model_dump() if isinstance(value, Resources) else value
    if "cwd" not in base or base["cwd"] is None:
        base["cwd"] = os.getcwd()
    parent = os.environ.get("WEFT_TASK_TID")
    if parent and not base.get("parent_tid"):
        base["parent_tid"] = parent
    base["request_id"] = (
        request_id
        or base.get("request_id")
        or os.environ.get("WEFT_REQUEST_ID")
        or str(uuid.uuid4())
    )
    try:
        return TaskSpec.model_validate(base)
    except ValidationError as exc:
        raise InvalidSpec(describe_validation_error(exc, what="task spec")) from None


def _qualname(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None)
    if not module or not name or "<" in name or module == "__main__":
        raise InvalidSpec("a function target must be importable: pass 'package.module:name'")
    return f"{module}:{name}"
