"""Task: a handle on one task (or manager), by TID.

It holds no state the broker does not: the outcome is the result message
on ``T{tid}.outbox``, the history is the task's events in
``weft.tasks.log``, and control goes through ``T{tid}.ctrl_in``/``ctrl_out``.
Any number of handles (in any process) can watch the same task.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from weft.client.polling import open_waiting, poll_until
from weft.client.result import Result
from weft.errors import TaskFailed, WaitTimeout, WeftError
from weft.models import TERMINAL
from weft.names import task_queue

FINAL_EVENT_GRACE = 2.0

if TYPE_CHECKING:
    from weft.client.client import WeftClient


class Task:
    """Returned by ``client.submit`` and ``client.task(tid)``; compares by TID."""

    def __init__(self, client: WeftClient, tid: str) -> None:
        self.client = client
        self.tid = tid
        self._result: Result | None = None

    def __repr__(self) -> str:
        return f"Task({self.tid!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other.tid == self.tid

    def __hash__(self) -> int:
        return hash(self.tid)

    @property
    def short_tid(self) -> str:
        return self.tid[-10:]

    # -- outcome ----------------------------------------------------------
    def _final(self, *, value: bool = True) -> Result | None:
        """The Result, if the task has one; ``value=False``: without reading a value
        that is in the blob store (a check that only asks whether it ended)."""
        from weft.client.payloads import KEEP, TaskOutput, result_value, wire_reader

        broker = self.client.broker
        final = _last_message(broker, task_queue(self.tid, "outbox"))
        if final is None or final.get("type") != "result":
            return None
        output = TaskOutput(broker, self.tid, int(final.get("attempt") or 1))
        if value:
            output.keep(KEEP)
        return Result.from_message(final, output=output,
                                   value=result_value(broker, final) if value else None,
                                   read_wire=wire_reader(broker, final),
                                   allow_pickle=self.client.context.settings.allow_pickle)

    def wait(self, timeout: float | None = None) -> Result:
        """Block until the task ends; return its Result whatever the status.

        Raises WaitTimeout if it has not ended within ``timeout`` seconds. A
        broker outage is waited out (``client.on_broker_outage`` hears one
        line); one still going on at the deadline raises BrokerError.
        """
        if self._result is None:
            started = time.monotonic()
            broker = open_waiting(lambda: self.client.broker, timeout=timeout,
                                  notify=self.client.on_broker_outage)
            if timeout is not None:
                timeout = max(0.0, timeout - (time.monotonic() - started))
            self._result = poll_until(broker, self._final, timeout=timeout,
                                      what=f"task {self.tid}",
                                      notify=self.client.on_broker_outage)
        return self._result

    def result(self, timeout: float | None = None) -> Result:
        """Wait and return the Result; raise TaskFailed unless it completed.

        The TaskFailed carries the Result and the remote ``error`` text and
        ``traceback`` (for a function that raised).
        """
        res = self.wait(timeout)
        if not res.ok:
            detail = res.error or res.reason or f"exit code {res.exit_code}"
            raise TaskFailed(f"task {self.tid} {res.status}: {detail}", result=res)
        return res

    def done(self) -> bool:
        """Has the task ended (any status)? Does not wait."""
        return self._result is not None or self._final(value=False) is not None

    def add_done_callback(self, fn: Callable[[Task], Any]) -> None:
        """Call ``fn(task)`` once the task has ended (at once if it already has).

        Callbacks run on the client's watcher thread, like the callbacks of
        a ``concurrent.futures.Future``; an exception in one is logged and
        ignored. Any number may be added. Closing the client drops the
        callbacks of tasks that have not ended.
        """
        def call(future: Any) -> None:
            if not future.cancelled():
                fn(self)

        self.client.watcher().watch(self.tid).add_done_callback(call)

    def output(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield output chunks as they arrive; stop when the task has ended.

        Each chunk is a dict with ``stream`` ("stdout"/"stderr"), ``seq``
        (one sequence across both streams, in the order the task wrote),
        ``data`` (bytes: exactly what the process wrote) and ``attempt``.
        A chunk is at most the chunk size (``WEFT_CHUNK_KB``). Raises
        WaitTimeout if the task is still going after ``timeout`` seconds.
        """
        from weft.client.payloads import chunk_bytes

        broker = open_waiting(lambda: self.client.broker, timeout=timeout,
                              notify=self.client.on_broker_outage)
        queue = task_queue(self.tid, "outbox")
        cursor: int | None = None
        deadline = None if timeout is None else time.monotonic() + timeout

        def fresh() -> list[tuple[str, int]] | None:
            page = broker.peek_many(queue, 500, after=cursor)
            return page or None

        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            page = poll_until(broker, fresh, timeout=remaining, what=f"output of {self.tid}",
                              notify=self.client.on_broker_outage)
            for body, mid in page:
                cursor = mid
                message = json.loads(body)
                if message.get("type") == "result":
                    return
                if message.get("type") == "stream":
                    message["data"] = chunk_bytes(broker, message)
                    message.pop("encoding", None)
                    message.pop("blob", None)
                yield message

    def status(self) -> dict[str, Any]:
        """The task's current state, rebuilt from its queues and events."""
        from weft.client.queries import task_status

        return task_status(self.client.broker, self.tid)

    def progress(self) -> dict[str, Any] | None:
        """The task's latest progress report (``fraction``, ``message``,
        ``numbers``, ``ts``), or None if it has reported none."""
        from weft.client.progress import latest
        from weft.client.queries import task_events

        return latest(task_events(self.client.broker, self.tid))

    def events(self) -> list[dict[str, Any]]:
        """The task's log events, oldest first (each names its event and status).

        Once the task has a result its final event is included: the manager
        writes the result first and the event right after, so a reader that
        saw the result waits (briefly) for the event.
        """
        from weft.client.queries import task_events

        broker = self.client.broker
        events = task_events(broker, self.tid)
        if _ended(events) or not self.done():
            return events
        try:
            return poll_until(broker, lambda: e if _ended(e := task_events(broker, self.tid)) else None,
                              timeout=FINAL_EVENT_GRACE, what=f"the final event of {self.tid}")
        except WaitTimeout:
            return task_events(broker, self.tid)

    # -- control ----------------------------------------------------------
    def control(self, command: str, *, timeout: float = 10.0, reason: str | None = None) -> dict[str, Any]:
        """Send one control command and wait for the matching reply.

        The reply echoes our request id with ``tid``, ``status``, ``pid``,
        ``ok``, ``reply`` and ``error``; ``rtt_ms`` is added here. A task
        that has already ended is answered from its result. WaitTimeout
        when nothing answers within ``timeout``. STOP or KILL of a job also
        stops its children: none starts once this returns (weft.jobs.stopping).
        """
        if command.upper() in ("STOP", "KILL"):
            from weft.jobs import stopping

            if stopping.is_open(self.client.broker, self.tid):
                return stopping.stop_job(self, command.upper(), timeout=timeout, reason=reason)
        return self.send_control(command, timeout=timeout, reason=reason)

    def send_control(self, command: str, *, timeout: float = 10.0,
                     reason: str | None = None) -> dict[str, Any]:
        """:meth:`control` to this task alone (a job's children are not touched)."""
        broker = self.client.broker
        request_id = uuid.uuid4().hex
        body: dict[str, Any] = {"v": 1, "command": command.upper(), "request_id": request_id}
        if reason:
            body["reason"] = reason
        sent_at = time.monotonic()
        upper = command.upper()
        if upper in ("PAUSE", "RESUME") and self._waiting():
            from weft.errors import UsageError

            raise UsageError(f"task {self.tid} has not started: there is nothing to "
                             f"{upper.lower()} (use 'weft task hold {self.short_tid}' to keep it "
                             "from starting)")
        if upper in ("STOP", "KILL") and self._cancel_if_queued(upper):
            return self._synthetic(upper, request_id, "cancelled", "cancelled before it started",
                                   sent_at)
        broker.write(task_queue(self.tid, "ctrl_in"), json.dumps(body))
        out_queue = task_queue(self.tid, "ctrl_out")

        def matching() -> dict[str, Any] | None:
            for raw, mid in broker.peek_all(out_queue):
                try:
                    reply = json.loads(raw)
                except ValueError:
                    continue
                if reply.get("request_id") == request_id:
                    broker.delete(out_queue, [mid])
                    return reply
            final = self._final(value=False)
            if final is not None:
                return self._answer_for_finished(command, request_id, final)
            if self._queued():
                # No process yet, so nobody to answer: the queue is the answer. A STOP
                # that raced a retry (settled while we waited) cancels the waiting attempt.
                self._drop_request(request_id)
                if upper in ("STOP", "KILL") and self._cancel_if_queued(upper):
                    return self._synthetic(upper, request_id, "cancelled",
                                           "cancelled before it started", sent_at)
                state, reason = self._waiting_state()
                reply = self._synthetic(upper, request_id, state,
                                        None if upper == "PING" else state, sent_at)
                if reason:
                    reply["details"]["reason"] = reason
                return reply
            return None

        try:
            reply = poll_until(broker, matching, timeout=timeout,
                               what=f"a reply from {self.tid} to {command.upper()}")
        except WaitTimeout:
            if upper == "PING":
                self._drop_request(request_id)  # nobody to answer it; leave no litter
            raise WaitTimeout(f"no reply from task {self.tid} to {command.upper()} within "
                              f"{timeout:g}s (is it running, and is its manager alive?)") from None
        reply["rtt_ms"] = round((time.monotonic() - sent_at) * 1000, 2)
        return reply

    def _queued(self) -> bool:
        """Still waiting on the spawn queue (no manager has claimed it)."""
        from weft.names import SPAWN_REQUESTS, SPAWN_WAITING

        broker = self.client.broker
        return any(broker.peek_one(queue, message_id=int(self.tid)) is not None
                   for queue in (SPAWN_REQUESTS, SPAWN_WAITING))

    def _waiting(self) -> bool:
        """Queued or held: no process exists yet."""
        from weft.names import SPAWN_HELD

        held = self.client.broker.peek_one(SPAWN_HELD, message_id=int(self.tid)) is not None
        return held or self._queued()

    def _waiting_state(self) -> tuple[str, str | None]:
        """``queued``, or ``deferred`` with the reason a manager gave for holding it back."""
        from weft.client.queries import task_events

        events = task_events(self.client.broker, self.tid)
        if events and events[-1].get("status") == "deferred":
            return "deferred", events[-1].get("reason")
        return "queued", None

    def _cancel_if_queued(self, command: str) -> bool:
        """STOP/KILL of a task not started yet (queued, waiting on its dependencies or
        held) or between retries: its request, result and event change in one
        fenced operation (weft/runtime/attempt.py)."""
        from weft.names import SPAWN_HELD, SPAWN_REQUESTS, SPAWN_WAITING
        from weft.runtime.attempt import cancel_queued

        return any(cancel_queued(self.client.broker, self.tid, command=command, queue=queue)
                   for queue in (SPAWN_REQUESTS, SPAWN_WAITING, SPAWN_HELD))

    def _synthetic(self, command: str, request_id: str, status: str, reply: str | None,
                   sent_at: float) -> dict[str, Any]:
        return {"v": 1, "request_id": request_id, "tid": self.tid, "command": command, "ok": True,
                "status": status, "pid": None, "reply": reply, "error": None,
                "details": {"answered_by": "client"},
                "rtt_ms": round((time.monotonic() - sent_at) * 1000, 2)}

    def _drop_request(self, request_id: str) -> None:
        broker = self.client.broker
        for raw, mid in broker.peek_all(task_queue(self.tid, "ctrl_in")):
            if request_id in raw:
                broker.delete(task_queue(self.tid, "ctrl_in"), [mid])

    def _answer_for_finished(self, command: str, request_id: str, final: Result) -> dict[str, Any]:
        # A finished task answers nothing; its queue holds the answer. Drop our request.
        self._drop_request(request_id)
        upper = command.upper()
        # A PING is never answered PONG from a queue: PONG means a process answered.
        return {"v": 1, "request_id": request_id, "tid": self.tid, "command": upper, "ok": True,
                "status": final.status, "pid": None,
                "reply": None if upper == "PING" else f"already {final.status}",
                "error": None, "details": {"finished": True, "answered_by": "client"}}

    def ping(self, timeout: float = 10.0) -> dict[str, Any]:
        """Ask the task's live process (or, for a manager, the manager) for PONG.

        Never raises for a missing answer: the reply's ``alive`` is True only
        when a live process answered on ``ctrl_out`` within ``timeout``, and
        then ``reply == "PONG"`` with the round trip in ``rtt_ms``. Otherwise
        ``alive`` is False, ``reply`` None and ``status`` says what the broker
        knows: a finished task's final status (``details.finished``), ``queued``
        (no process yet), or, with no answer in time, the last recorded status
        and ``error`` saying so.
        """
        try:
            reply = self.control("PING", timeout=timeout)
        except WaitTimeout as exc:
            return {"v": 1, "request_id": None, "tid": self.tid, "command": "PING", "ok": False,
                    "alive": False, "status": self._last_known_status(), "pid": None,
                    "reply": None, "error": str(exc), "details": {"answered": False},
                    "rtt_ms": None}
        reply["alive"] = reply.get("reply") == "PONG" and \
            (reply.get("details") or {}).get("answered_by") != "client"
        return reply

    def _last_known_status(self) -> str | None:
        try:
            return str(self.status()["status"])
        except WeftError:
            return None

    def stop(self, timeout: float = 10.0) -> dict[str, Any]:
        """SIGTERM to the task's process group (SIGKILL 5 s later): ends ``cancelled``."""
        return self.control("STOP", timeout=timeout)

    def kill(self, timeout: float = 10.0) -> dict[str, Any]:
        """SIGKILL to the task's process group: ends ``killed``."""
        return self.control("KILL", timeout=timeout)

    def pause(self, timeout: float = 10.0) -> dict[str, Any]:
        """SIGSTOP the task's tree (a manager stops claiming new work)."""
        return self.control("PAUSE", timeout=timeout)

    def resume(self, timeout: float = 10.0) -> dict[str, Any]:
        """SIGCONT a paused task (a paused manager claims again)."""
        return self.control("RESUME", timeout=timeout)


def _last_message(broker: Any, queue: str) -> dict[str, Any] | None:
    """The newest message of ``queue`` (paging, so a long outbox is never held whole)."""
    from weft.codec import loads_object

    last: str | None = None
    cursor: int | None = None
    while page := broker.peek_many(queue, 500, after=cursor):
        last, cursor = page[-1]
        if len(page) < 500:
            break
    return loads_object(last) if last is not None else None


def _ended(events: list[dict[str, Any]]) -> bool:
    return bool(events) and events[-1].get("status") in TERMINAL
