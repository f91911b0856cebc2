"""A task's log (its output and its lifecycle, in order) and the event stream.

Broker message ids come from one generator per broker, so an output chunk
on ``T{tid}.outbox`` and an event on ``weft.tasks.log`` can be put in the
order they were written by sorting on id alone. Every entry this module
yields carries the task's ``tid`` and ``request_id``, so a line taken out
of context still says which request it belongs to.

Followers look again only when the broker changed (``data_version``), never
on a fixed sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from weft.broker import Broker
from weft.client.polling import wait_for_change
from weft.client.queries import _load, task_status
from weft.errors import NotFound
from weft.models.payload import blob_ref, encode_bytes
from weft.names import TASKS_LOG, task_queue


class TaskLog:
    """Reads one task's entries incrementally: each :meth:`read` returns what is new."""

    def __init__(self, broker: Broker, tid: str, *, since: int = 0) -> None:
        """``since``: a broker id before the task's first event (skips reading the log
        before it; a job follows each child from the child's own TID)."""
        self.broker = broker
        self.tid = tid
        self.request_id: str | None = None
        self.finished = False
        self._event_cursor = since
        self._out_cursor: int | None = None

    def read(self) -> list[dict[str, Any]]:
        entries = self._events() + self._output()
        entries.sort(key=lambda e: e["id"])
        for entry in entries:
            if self.request_id is None and entry.get("request_id"):
                self.request_id = entry["request_id"]
        for entry in entries:
            entry.setdefault("tid", self.tid)
            if entry.get("request_id") is None and self.request_id is not None:
                entry["request_id"] = self.request_id
            if entry["type"] == "result":
                self.finished = True
        return entries

    def _events(self) -> list[dict[str, Any]]:
        found = self.broker.find_messages(TASKS_LOG, f'"tid":"{self.tid}"',
                                          after=self._event_cursor or None)
        out = []
        for body, mid in found:
            if mid <= self._event_cursor:
                continue
            event = _load(body)
            self._event_cursor = mid
            if event is not None and event.get("tid") == self.tid:
                out.append({"type": "event", "id": mid, **event})
        return out

    def _output(self) -> list[dict[str, Any]]:
        out = []
        queue = task_queue(self.tid, "outbox")
        while True:
            page = self.broker.peek_many(queue, 500, after=self._out_cursor)
            for body, mid in page:
                self._out_cursor = mid
                message = _load(body)
                if message is not None and message.get("type") in ("stream", "result"):
                    out.append({**_inline(self.broker, message), "id": mid})
            if len(page) < 500:
                return out


def _inline(broker: Broker, message: dict[str, Any]) -> dict[str, Any]:
    """A stream message with its blob (at most one chunk) read in, as ``data``/``encoding``."""
    if message.get("type") != "stream" or blob_ref(message) is None:
        return message
    from weft.client.payloads import chunk_bytes

    data = chunk_bytes(broker, message)
    return {**{k: v for k, v in message.items() if k != "blob"}, **encode_bytes(data)}


def known(broker: Broker, tid: str) -> bool:
    """Does anything know this TID? Its events, outbox or queued request, or a
    manager's claim queue (claimed, first event not yet written)."""
    try:
        task_status(broker, tid)
        return True
    except NotFound:
        pass
    if not tid.isdigit():
        return False
    return any(queue.startswith("T") and queue.endswith(".reserved")
               and broker.peek_one(queue, message_id=int(tid)) is not None
               for queue, _pending, _total in broker.queue_stats())


def task_log(broker: Broker, tid: str, *, follow: bool = False) -> Iterator[dict[str, Any]]:
    """Yield the task's entries in order; with ``follow``, until its result."""
    log = TaskLog(broker, tid)
    version = broker.data_version()
    while True:
        yield from log.read()
        if not follow or log.finished:
            return
        version = wait_for_change(broker, version, timeout=None)


def _matches(event: dict[str, Any], request_id: str | None, tid: str | None) -> bool:
    if request_id is not None and event.get("request_id") != request_id:
        return False
    return tid is None or event.get("tid") == tid


def events(broker: Broker, *, request_id: str | None = None, tid: str | None = None,
           last: int | None = None, follow: bool = False) -> Iterator[dict[str, Any]]:
    """Yield ``weft.tasks.log`` events oldest first (``last``: only the newest N
    of those present now); with ``follow``, keep yielding new ones forever."""
    backlog = []
    cursor: int | None = None
    for body, mid in broker.peek_all(TASKS_LOG):
        cursor = mid
        event = _load(body)
        if event is not None and _matches(event, request_id, tid):
            backlog.append({**event, "id": mid})
    yield from backlog[-last:] if last else backlog
    version = broker.data_version()
    while follow:
        version = wait_for_change(broker, version, timeout=None)
        for body, mid in broker.peek_all(TASKS_LOG, after=cursor):
            cursor = mid
            event = _load(body)
            if event is not None and _matches(event, request_id, tid):
                yield {**event, "id": mid}
