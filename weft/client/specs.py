"""Turning the pieces a caller gives (keyword arguments, a spec file) into
one validated TaskSpec. Pure: no broker, no project needed, so bad input is
refused before anything is created or queued. The pieces are put together
by :mod:`weft.client.fields`; this module adds pydantic's validation.

The keyword arguments ``WeftClient.submit``/``run``/``map`` accept are
declared once, as the :class:`TaskOptions` TypedDict, so a type checker
catches a misspelt option at the call site.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, TypedDict

from pydantic import ValidationError

from weft.client.fields import assemble
from weft.errors import InvalidSpec, describe_validation_error
from weft.models import Limits, Resources, RetryPolicy, TaskSpec


class CommonOptions(TypedDict, total=False):
    """Task options shared by ``submit``, ``run`` and ``map`` (see TaskSpec)."""

    name: str
    labels: Mapping[str, str]
    env: Mapping[str, str]
    secrets: Sequence[str]
    cwd: str | os.PathLike[str]
    resources: Resources | Mapping[str, Any]
    limits: Limits | Mapping[str, Any]
    retry: RetryPolicy | Mapping[str, Any]
    retries: int
    priority: int
    stream_output: bool
    shell: bool
    request_id: str
    group: str
    hold: bool
    inbox_message: Any
    stdin: bytes | IO[bytes]
    delay: float
    after: Sequence[Any] | Any
    after_mode: str
    serializer: str


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
    try:
        return TaskSpec.model_validate(assemble(
            command=command, function=function, spec=spec, args=args, kwargs=kwargs,
            request_id=request_id, retries=retries, **fields))
    except ValidationError as exc:
        raise InvalidSpec(describe_validation_error(exc, what="task spec")) from None
