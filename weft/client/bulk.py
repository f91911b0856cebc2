"""Queuing many command tasks at once: ``weft submit -``, one command per line.

A shell loop of ``weft run --no-wait`` pays an interpreter start and two
broker commits per task (about 150 ms); task-spooler's ``tsp`` pays 2 ms.
Here every line is checked first (nothing is queued when one is bad, and
the error names its line), then the tasks are queued in batches, each batch
one transaction whose ids are drawn inside it (:meth:`Broker.insert_drawn`):
a spawn request and its submit record per task, thousands of tasks a second.

A batch is all or nothing. Should the broker fail between batches, the
batches already committed stay queued; :class:`BulkError` says how many
tasks that was, and their TIDs were already handed to the caller.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from weft.errors import BulkError, InvalidSpec, WeftError
from weft.names import SPAWN_REQUESTS, TASKS_LOG

if TYPE_CHECKING:
    from weft.client.client import WeftClient

BATCH = 500  # tasks per transaction: the write lock is held about 50 ms


def submit_lines(client: WeftClient, lines: Iterable[str], *, shell: bool = False,
                 batch: int = BATCH, **common: Any) -> Iterator[list[str]]:
    """Check every line now (InvalidSpec names the first bad one, nothing queued), then
    return an iterator that queues them batch by batch, yielding each batch's TIDs.

    ``common`` holds task options for every line (those of :meth:`WeftClient.submit`:
    name, env, cwd, timeout, resources, priority, retries, labels, group...).
    A manager is started after the first batch, as :meth:`WeftClient.submit` does.
    """
    tasks = check_lines(lines, shell=shell, backend=client.context.backend,
                        max_size=client.broker.max_message_size, **common)
    return queue_checked(client, tasks, batch)


def check_lines(lines: Iterable[str], *, shell: bool = False, backend: str | None = None,
                max_size: int | None = None, **common: Any) -> list[dict[str, Any]]:
    """Every line's task fields, checked (InvalidSpec names the first bad line).

    Without ``backend`` and ``max_size``: those of the project found from here,
    or of the one a submit would create, so no project is created for input
    that is refused (``weft submit``).
    """
    if backend is None or max_size is None:
        backend, max_size = _limits_here()
    return check_all(parse_lines(lines, shell=shell), {**common, "shell": shell or None},
                     backend=backend, max_size=max_size)


def _limits_here() -> tuple[str, int]:
    """The backend and message limit of the project found from here, without creating one."""
    from weft import context
    from weft.broker.broker import message_limit
    from weft.errors import ContextError
    from weft.settings import Settings

    try:
        backend = context.resolve(create=False).backend
    except ContextError:  # none yet: a new project takes its settings from the environment
        backend = Settings.from_env().broker_backend
    return backend, message_limit()


def queue_checked(client: WeftClient, tasks: list[dict[str, Any]],
                  batch: int = BATCH) -> Iterator[list[str]]:
    """Queue :func:`check_lines`' tasks in batches, yielding each batch's TIDs; start
    a manager after the first batch."""
    started = False
    for tids in queue_all(client, tasks, batch=batch):
        if not started and client.auto_start:
            started = True
            client.workers.ensure_running()
        yield tids


def parse_lines(lines: Iterable[str], *, shell: bool) -> list[tuple[int, list[str]]]:
    """(line number, argv) of every command line; blank lines and ``#`` comments skipped.

    Without ``shell`` a line is split into words as a POSIX shell would
    (quotes, backslashes), but nothing is expanded; with ``shell`` the whole
    line is one ``/bin/sh -c`` script. InvalidSpec names the first bad line.
    """
    commands = []
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if "\0" in line:
            raise InvalidSpec(f"line {number}: a command cannot hold a NUL byte")
        if shell:
            commands.append((number, [text]))
            continue
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise InvalidSpec(f"line {number}: {exc}") from None
        if not argv or not argv[0]:
            raise InvalidSpec(f"line {number}: the command is empty")
        commands.append((number, argv))
    return commands


def check_all(commands: list[tuple[int, list[str]]], common: Mapping[str, Any], *,
              backend: str, max_size: int | None = None) -> list[dict[str, Any]]:
    """Every line's task fields, checked; InvalidSpec names the first bad line.

    With ``max_size`` (the broker's message limit) a line whose messages would
    be refused is a bad line too, so nothing is queued before it fails. Only
    the first line and lines long enough to come near the limit are encoded
    to measure them: JSON at most multiplies a character by 12.
    """
    from weft.client.fields import checked_fields
    from weft.client.submit_checks import check_submit

    shared = dict(common)
    shared.setdefault("cwd", None)
    checked: list[dict[str, Any]] = []
    for number, argv in commands:
        try:
            fields = checked_fields(command=argv, **shared)
            check_submit(fields, backend=backend)
        except WeftError as exc:
            raise InvalidSpec(f"line {number}: {_strip(str(exc))}") from None
        if max_size is not None and (not checked or sum(map(len, argv)) * 12 > max_size // 2):
            _check_size(number, fields, max_size)
        checked.append(fields)
    return checked


def _check_size(number: int, fields: dict[str, Any], max_size: int) -> None:
    """InvalidSpec when line ``number``'s request or submit record exceeds ``max_size``."""
    from weft.client.submitted import record_body, record_fields

    request = _request(fields)
    record = record_body(0, record_fields(request, queue=SPAWN_REQUESTS))
    size = max(len(_dumps(request).encode()), len(record.encode()))
    if size > max_size:
        raise InvalidSpec(f"line {number}: the task is {size:,} bytes, over the broker's "
                          f"{max_size:,}-byte message limit")


def queue_all(client: WeftClient, tasks: list[dict[str, Any]], *,
              batch: int = BATCH) -> Iterator[list[str]]:
    """Queue checked task fields in batches; yield each batch's TIDs once committed."""
    from weft.client.submitted import record_body, record_fields

    queued = 0
    for start in range(0, len(tasks), batch):
        part = tasks[start:start + batch]
        requests = [_request(fields) for fields in part]
        records = [record_fields(r, queue=SPAWN_REQUESTS) for r in requests]
        bodies = [_dumps(r) for r in requests]

        def build(ids: list[int], bodies: list[str] = bodies,
                  records: list[dict[str, Any]] = records) -> list[tuple[str, str, int]]:
            rows = []
            for i, (body, record) in enumerate(zip(bodies, records, strict=True)):
                tid = ids[2 * i]
                rows.append((SPAWN_REQUESTS, body, tid))
                rows.append((TASKS_LOG, record_body(tid, record), ids[2 * i + 1]))
            return rows

        try:
            rows = client.broker.insert_drawn(2 * len(part), build)
        except WeftError as exc:
            if queued == 0:
                raise
            raise BulkError(f"{exc}; {queued} task(s) were queued, the other "
                            f"{len(tasks) - queued} were not", queued) from None
        queued += len(part)
        yield [str(mid) for queue, _body, mid in rows if queue == SPAWN_REQUESTS]


def _request(fields: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"v": 1, "taskspec": fields, "attempt": 1}
    if fields.get("request_id") is not None:
        request["request_id"] = fields["request_id"]
    return request


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, separators=(",", ":"))


def _strip(message: str) -> str:
    return message.removeprefix("invalid task spec: ")
