"""BaseTask: what every task has, managers included.

Queue names derived from the TID, a state that only moves along the
transition table, one log event per state change, a process title, and the
control channel: PING → PONG, STATUS, STOP, KILL, PAUSE, RESUME. A malformed
or unknown command gets an error reply; the task keeps running.

Subclasses say what STOP/KILL/PAUSE/RESUME *do* (``on_stop`` ...); the
parsing, the replies and the terminal-state rule live here once.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from weft.models import CONTROL_COMMANDS, ControlRequest, TaskState, can_transition
from weft.names import short_tid, task_queues
from weft.runtime.batch import Batch, dumps

if TYPE_CHECKING:
    from weft.broker import Broker


class BaseTask:
    role = "task"

    def __init__(self, tid: str, *, name: str | None, batch: Batch) -> None:
        self.tid = tid
        self.name = name
        self.queues = task_queues(tid)
        self.batch = batch
        self.state = TaskState.QUEUED
        self.pid: int | None = None

    # -- state ------------------------------------------------------------
    def event_fields(self) -> dict[str, Any]:
        """Fields every event of this task carries (request id, parent...)."""
        return {"pid": self.pid, "name": self.name}

    def transition(self, state: TaskState, event: str, **fields: Any) -> None:
        if state != self.state and not can_transition(self.state, state):
            raise RuntimeError(f"illegal transition {self.state} -> {state} for {self.tid}")
        self.state = state
        self.batch.event(event, self.tid, state.value, **{**self.event_fields(), **fields})
        self.update_title()

    def update_title(self) -> None:
        """Only the process that *is* the task renames itself (see Manager)."""

    def title(self) -> str:
        return f"weft:{short_tid(self.tid)}:{self.name or self.role}:{self.state.value}"

    # -- control ----------------------------------------------------------
    def serve_control(self, broker: Broker) -> bool:
        """Answer every message waiting on ctrl_in (replies go into the batch); any?"""
        served = False
        while (body := _take_control(broker, self.queues["ctrl_in"])) is not None:
            self.send_reply(self.handle_control(body))
            served = True
        return served

    def handle_control(self, body: str) -> dict[str, Any]:
        """Answer one message from ctrl_in; never raises."""
        request_id = None
        try:
            raw = json.loads(body)
            if isinstance(raw, str):
                raw = {"command": raw}
            if isinstance(raw, dict):
                request_id = raw.get("request_id")
                request_id = request_id if isinstance(request_id, str) else None
            request = ControlRequest.model_validate(raw)
        except (ValueError, ValidationError, RecursionError, TypeError) as exc:
            text = (str(exc).splitlines() or [type(exc).__name__])[0]
            if not isinstance(request_id, str):
                request_id = None
            return self.reply(None, request_id, ok=False, error=f"malformed control message: {text}")
        command = request.command
        if command not in CONTROL_COMMANDS:
            return self.reply(command, request.request_id, ok=False,
                              error=f"unknown command {command!r}; expected one of {', '.join(CONTROL_COMMANDS)}")
        if command == "PING":
            return self.reply(command, request.request_id, reply="PONG")
        if command == "STATUS":
            return self.reply(command, request.request_id, details=self.status_details())
        if self.state.terminal:
            return self.reply(command, request.request_id, ok=True,
                              reply=f"already {self.state.value}")
        handler = {"STOP": self.on_stop, "KILL": self.on_kill,
                   "PAUSE": self.on_pause, "RESUME": self.on_resume}[command]
        try:
            message = handler(request.reason)
        except Exception as exc:  # noqa: BLE001 - a control error must not kill the task
            return self.reply(command, request.request_id, ok=False, error=str(exc))
        return self.reply(command, request.request_id, reply=message)

    def reply(self, command: str | None, request_id: str | None, *, ok: bool = True,
              reply: str | None = None, error: str | None = None,
              details: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"v": 1, "request_id": request_id, "tid": self.tid, "command": command, "ok": ok,
                "status": self.state.value, "pid": self.pid, "reply": reply, "error": error,
                "details": details or {}}

    def send_reply(self, reply: dict[str, Any]) -> None:
        self.batch.write(self.queues["ctrl_out"], dumps(reply))

    def status_details(self) -> dict[str, Any]:
        return {"role": self.role, "name": self.name}

    def on_stop(self, reason: str | None) -> str:
        raise NotImplementedError

    def on_kill(self, reason: str | None) -> str:
        raise NotImplementedError

    def on_pause(self, reason: str | None) -> str:
        raise NotImplementedError

    def on_resume(self, reason: str | None) -> str:
        raise NotImplementedError


def _take_control(broker: Broker, queue: str) -> str | None:
    """The next control message, if any. Peek first: an empty claim costs 3x a peek."""
    head = broker.peek_one(queue)
    if head is None:
        return None
    msg = broker.read_one(queue, message_id=head[1])
    return None if msg is None else msg[0]
