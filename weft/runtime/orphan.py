"""Finishing tasks whose manager died.

When the manager's end of the link closes, the supervisor keeps its task
processes running and hands their reports to an :class:`OrphanHost`, which
opens the supervisor's first and only broker connection (no fork happens
after this) and does what the manager would have: stream output, answer
control messages, write results and events, schedule retries. The launcher
exits when its last task has ended.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from weft import context
from weft.broker import Broker
from weft.models import SpawnRequest, TaskState
from weft.runtime.batch import Batch
from weft.runtime.consumer import Consumer

CONTROL_EVERY = 0.1


class OrphanHost:
    def __init__(self, supervisor: Any, *, root: str, manager_tid: str) -> None:
        self.supervisor = supervisor
        self.manager_tid = manager_tid
        # The project's own settings (its config file, then the environment): the broker
        # may be a Postgres schema recorded in .weft/config.json.
        self.broker = Broker.open(Path(root), context.resolve(root).settings)
        self.batch = Batch(self.broker)
        self.consumers: dict[str, Consumer] = {}
        self._next_control = 0.0

    def adopt(self, op: dict[str, Any], pid: int, started_at: float) -> None:
        task = op["task"]
        request = SpawnRequest.model_validate_json(task["request"])
        spec = request.taskspec.model_copy(update={"tid": task["tid"],
                                                   "request_id": task.get("request_id")})
        consumer = Consumer(spec, request=request, batch=self.batch, host=self,
                            work_id=task.get("work_id"), gpu_ids=tuple(task.get("gpu_ids") or ()))
        consumer.pid = pid
        consumer.started_at = started_at
        consumer.state = TaskState.RUNNING
        self.batch.event("task_adopted", consumer.tid, "running", **consumer.event_fields(),
                         reason="manager_lost")
        self.consumers[consumer.tid] = consumer
        self.batch.flush()

    def handle(self, frame: dict[str, Any]) -> None:
        consumer = self.consumers.get(frame.get("tid", ""))
        if consumer is None:
            return
        if frame["ev"] == "out":
            consumer.output(frame["s"], frame["d"])
        elif frame["ev"] == "exit":
            consumer.exited(frame)
            del self.consumers[consumer.tid]
        self.batch.flush()

    def poll(self) -> None:
        now = time.monotonic()
        if now < self._next_control:
            return
        self._next_control = now + CONTROL_EVERY
        for consumer in list(self.consumers.values()):
            msg = self.broker.read_one(consumer.queues["ctrl_in"])
            if msg is not None:
                consumer.send_reply(consumer.handle_control(msg[0]))
        self.batch.flush()

    def signal(self, tid: str, sig: str, reason: str | None, grace: float | None = None) -> None:
        self.supervisor.signal_task(tid, sig, reason, grace)

    def close(self) -> None:
        self.batch.flush()
        self.broker.close()
