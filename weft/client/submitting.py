"""Turning what a caller gives WeftClient into a queued spawn request.

WeftClient's submit methods (docs/python-api.md) delegate here: build and
check the TaskSpec (encoding a function's arguments), resolve ``after``,
write the request with its submit record into the queue it belongs in
(``weft.spawn.requests``, ``.held`` or ``.waiting``) and hand back a Task.
Kept apart from the client so the client module is about the connection
and its verbs, not the request format. ``submit_fields`` is the CLI's path
and must not import pydantic, so every import here is lazy.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from weft.errors import InvalidSpec, WeftError
from weft.names import SPAWN_HELD, SPAWN_REQUESTS, SPAWN_WAITING

if TYPE_CHECKING:
    from weft.client.client import WeftClient
    from weft.client.task import Task
    from weft.models import TaskSpec


def submit_spec(client: WeftClient, spec: TaskSpec, *, inbox_message: Any,
                delay: float | None, stdin: bytes | IO[bytes] | None,
                stdin_stream: bool, hold: bool) -> Task:
    """Queue an already validated TaskSpec (see WeftClient.submit_spec)."""
    from pydantic_core import PydanticSerializationError

    from weft.client.submit_checks import check_submit
    from weft.models import SpawnRequest

    if stdin is not None:
        check_stdin(stdin, inbox_message)
    check_submit({"cwd": spec.cwd, "timeout": spec.timeout}, backend=client.context.backend)
    not_before = time.time() + delay if delay else None
    request = SpawnRequest(taskspec=spec, inbox_message=inbox_message,
                           request_id=spec.request_id, not_before=not_before,
                           stdin="stream" if stdin is not None or stdin_stream else None)
    try:
        body = request.model_dump(mode="json", exclude_none=True)
    except (PydanticSerializationError, ValueError, TypeError) as exc:
        raise InvalidSpec(f"task spec: a value is not JSON (submit encodes Python values; "
                          f"a TaskSpec built by hand must hold JSON only): {exc}") from None
    task = queue(client, body, hold=hold, waiting=check_after(client, spec.after))
    if stdin is not None:
        client.send_stdin(task, stdin)
    return task


def submit_fields(client: WeftClient, fields: Mapping[str, Any], *, delay: float | None,
                  stdin_stream: bool, hold: bool, extra: Mapping[str, Any] | None) -> Task:
    """Queue a task given as checked plain fields, without pydantic (the CLI's way)."""
    from weft.client.submit_checks import check_submit

    check_submit(fields, backend=client.context.backend)
    request: dict[str, Any] = {"v": 1, "taskspec": dict(fields), "attempt": 1}
    if fields.get("request_id") is not None:
        request["request_id"] = fields["request_id"]
    if delay:
        request["not_before"] = time.time() + delay
    if stdin_stream:  # the caller then sends it with send_stdin
        request["stdin"] = "stream"
    if fields.get("after"):
        from weft.client.dependencies import resolve_after

        request["taskspec"]["after"] = resolve_after(client.broker, fields["after"])
    return queue(client, request, hold=hold, extra=extra, waiting=bool(fields.get("after")))


def submit_many(client: WeftClient, specs: Iterable[Mapping[str, Any] | TaskSpec],
                common: Mapping[str, Any]) -> list[Task]:
    """Check every item, then queue them all (see WeftClient.submit_many)."""
    from weft.models import TaskSpec as _TaskSpec

    built = []
    for index, item in enumerate(specs):
        if isinstance(item, _TaskSpec):
            built.append((item, None, None))
            continue
        pieces: dict[str, Any] = {**common, **item}
        inbox_message = pieces.pop("inbox_message", None)
        delay = pieces.pop("delay", None)
        try:
            built.append((spec_of(client, pieces), inbox_message, delay))
        except WeftError as exc:
            raise type(exc)(f"item {index}: {exc}") from None
    return [client.submit_spec(spec, inbox_message=message, delay=delay)
            for spec, message, delay in built]


def spec_of(client: WeftClient, pieces: dict[str, Any]) -> TaskSpec:
    """The TaskSpec of :meth:`WeftClient.submit`'s pieces: ``after`` resolved,
    a function's arguments encoded by the chosen serializer."""
    from weft.client.specs import build_spec

    if pieces.get("after") is not None:
        from weft.client.dependencies import resolve_after

        pieces["after"] = resolve_after(client.broker, pieces["after"])
    serializer = pieces.pop("serializer", "auto")
    if pieces.get("function") is not None or pieces.get("args") or pieces.get("kwargs"):
        pieces["args"], pieces["kwargs"], pieces["serializer"] = encode_call(
            client, pieces.get("args") or (), pieces.get("kwargs") or {}, serializer)
    return build_spec(**pieces)


def encode_call(client: WeftClient, args: Sequence[Any], kwargs: Mapping[str, Any],
                serializer: str) -> tuple[list[Any], dict[str, Any], str]:
    from weft.models.values import encode_call as encode

    return encode(args, kwargs, serializer=serializer,  # type: ignore[arg-type]
                  allow_pickle=client.context.settings.allow_pickle)


def check_after(client: WeftClient, after: Sequence[str] | None) -> bool:
    """Does the task wait for others? InvalidSpec if one of them is unknown."""
    if not after:
        return False
    from weft.client.dependencies import resolve_after

    if resolve_after(client.broker, after) != list(after):
        raise InvalidSpec("after: give each dependency once, as a full TID")
    return True


def queue(client: WeftClient, request: Mapping[str, Any], *, hold: bool = False,
          extra: Mapping[str, Any] | None = None, waiting: bool = False) -> Task:
    """Queue the request with its submit record (:mod:`weft.client.submitted`).

    A held one waits in ``weft.spawn.held`` until a release; one with
    dependencies waits apart, where no manager's dispatch looks, until
    weft/runtime/dependencies.py releases it (same id) when due.
    """
    from weft.client.submitted import queue_request
    from weft.client.task import Task

    if hold and waiting:
        raise InvalidSpec("a task with dependencies (after) cannot also be held")
    name = SPAWN_HELD if hold else (SPAWN_WAITING if waiting else SPAWN_REQUESTS)
    tid = queue_request(client.broker, request, queue=name, extra=extra)
    if client.auto_start and not hold:
        client.workers.ensure_running()
    return Task(client, tid.zfill(19))


def check_stdin(stdin: Any, inbox_message: Any) -> None:
    if inbox_message is not None:
        raise InvalidSpec("stdin: give either stdin or inbox_message, not both")
    if not isinstance(stdin, bytes | bytearray | memoryview) and not hasattr(stdin, "read"):
        raise InvalidSpec(f"stdin: expected bytes or a binary file, got {type(stdin).__name__}")
