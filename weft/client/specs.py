"""Turning the pieces a caller gives (CLI flags, keyword arguments, a spec
file) into one validated TaskSpec. Pure: no broker, no project needed, so
bad input is refused before anything is created or queued.

The keyword arguments ``WeftClient.submit``/``run``/``map`` accept are
declared once, as the :class:`TaskOptions` TypedDict, so a type checker
catches a misspelt option at the call site.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from pydantic import BaseModel, ValidationError

from weft.errors import InvalidSpec, describe_validation_error
from weft.models import Limits, Resources, RetryPolicy, TaskSpec

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


class CommonOptions(TypedDict, total=False):
    """Task options shared by ``submit``, ``run`` and ``map`` (see TaskSpec)."""

    name: str
    labels: Mapping[str, str]
    env: Mapping[str, str]
    cwd: str | os.PathLike[str]
    resources: Resources | Mapping[str, Any]
    limits: Limits | Mapping[str, Any]
    retry: RetryPolicy | Mapping[str, Any]
    retries: int
    priority: int
    stream_output: bool
    shell: bool
    request_id: str
    inbox_message: Any
    delay: float


class TaskOptions(CommonOptions, total=False):
    """:class:`CommonOptions` plus ``timeout``: the task's own deadline in seconds."""

    timeout: float


def build_spec(
    *,
    command: Sequence[str] | str | None = None,
    function: str | Callable[..., Any] | None = None,
    spec: TaskSpec | Mapping[str, Any] | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    retries: int | None = None,
    **fields: Any,
) -> TaskSpec:
    """Validate the pieces of a task into a TaskSpec; InvalidSpec names the field.

    ``retries=N`` is short for ``retry={"retries": N}`` (merged into any
    ``retry`` given). A task submitted from inside a task records the outer
    task as its ``parent_tid`` and inherits its request id.
    """
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
    for key, value in fields.items():
        if value is not None:
            base[key] = _plain(value)
    if base.get("cwd") is None:
        base["cwd"] = os.getcwd()
    else:
        base["cwd"] = os.fspath(base["cwd"])
    if function is not None:
        base["function"] = function if isinstance(function, str) else _qualname(function, base["cwd"])
    if args:
        base["args"] = list(args)
    if kwargs:
        base["kwargs"] = dict(kwargs)
    if retries is not None:
        retry = base.get("retry")
        base["retry"] = {**(retry if isinstance(retry, Mapping) else {}), "retries": retries}
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


def _plain(value: Any) -> Any:
    """Models (Resources, Limits, RetryPolicy) and mappings as plain dicts."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _qualname(fn: Callable[..., Any], cwd: str) -> str:
    """``package.module:name`` for a callable the task process can import.

    A function defined in the script being run (``__main__``) is imported
    by the task as the script's own module, which works when the script
    sits in the task's working directory (the task imports like
    ``python -c`` run there) and guards its top level with
    ``if __name__ == "__main__":``.
    """
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None)
    if not module or not name or "<" in name:
        raise InvalidSpec("a function target must be a module-level function "
                          "(or pass 'package.module:name')")
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if not main_file or Path(main_file).resolve().parent != Path(cwd).resolve():
            raise InvalidSpec(
                f"{name} is defined in the script being run, which the task cannot import "
                "from its working directory; pass cwd= the script's directory, or "
                "'package.module:name'")
        module = Path(main_file).stem
    return f"{module}:{name}"
