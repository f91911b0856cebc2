"""Assembling a task's fields from the pieces a caller gives (CLI flags,
keyword arguments, a spec file), as plain data.

Kept apart from :mod:`weft.client.specs`, which validates the result into a
TaskSpec, so the CLI can build and check a task without importing pydantic
(see :func:`checked_fields` and docs/decisions/0004-lean-cli-submit.md).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from weft.errors import InvalidSpec

SPEC_FIELDS = (
    "name",
    "labels",
    "env",
    "secrets",
    "cwd",
    "timeout",
    "resources",
    "limits",
    "retry",
    "priority",
    "stream_output",
    "shell",
    "group",
    "after",
    "after_mode",
    "serializer",
)


def assemble(
    *,
    command: Sequence[str] | str | None = None,
    function: str | Callable[..., Any] | None = None,
    spec: Any = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    retries: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The task's fields: ``spec`` overridden by the other pieces, plus the
    defaults taken from where the caller runs (its cwd, and the task it runs
    inside: ``parent_tid`` and request id). Types are not checked here."""
    unknown = set(fields) - set(SPEC_FIELDS)
    if unknown:
        raise InvalidSpec(f"unknown task option(s): {', '.join(sorted(unknown))}")
    base: dict[str, Any] = {}
    if spec is not None:
        base = spec.model_dump(exclude_unset=True) if hasattr(spec, "model_dump") else dict(spec)
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
    return base


def checked_fields(**pieces: Any) -> dict[str, Any]:
    """:func:`assemble`, then the TaskSpec rules that are not about types.

    For callers whose pieces are already of the right types and within
    bounds (click has checked the CLI's flags): the manager validates the
    request as a TaskSpec when it reads it, and tests/test_spec_rules.py
    checks that this path and :func:`weft.client.specs.build_spec` agree.
    """
    from weft.models.rules import check_fields

    fields = assemble(**pieces)
    problems = check_fields(fields)
    if problems:
        raise InvalidSpec("invalid task spec: " + "; ".join(problems))
    return fields


def _plain(value: Any) -> Any:
    """Models (Resources, Limits, RetryPolicy) and mappings as plain dicts."""
    if hasattr(value, "model_dump"):
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
