"""Finishing tasks whose manager died.

When the manager's end of the link closes, the supervisor keeps its task
processes running and hands their reports to an :class:`OrphanHost`, which
opens the supervisor's first and only broker connection (no fork happens
after this) and does what the manager would have: stream output, answer
control messages, write results and events, schedule retries.

Taking over, in this order (see :meth:`OrphanHost.take_over`):

1. rewrite the dead manager's registry record as ``orphaned`` with this
   process's pid, so peers see a live owner and leave its claims alone
   (until then they hold off because the launcher pid is alive);
2. adopt every running task, writing the ``task_started`` event the manager
   may have died before writing (so nobody ever re-runs a started task);
3. settle the manager's other claims (:func:`recovery.settle_claims`): put
   back what never started, finish as ``consumer_lost`` what this launcher
   forked but whose report the manager never recorded.

The record's heartbeat is kept fresh while tasks run; the launcher writes
``stopped`` and exits when its last task has ended.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from weft import context
from weft.broker import Broker
from weft.models import SpawnRequest, TaskState
from weft.names import WORKERS_REGISTRY, task_queue
from weft.runtime import registry
from weft.runtime.batch import Batch, dumps
from weft.runtime.consumer import Consumer
from weft.runtime.outcome import lost
from weft.runtime.recovery import (
    STARTED_EVENTS,
    attempt_events,
    attempt_settled,
    claim_identity,
    settle_claims,
)
from weft.runtime.tasklog import log_task_event

CONTROL_EVERY = 0.1
log = logging.getLogger("weft.orphan")


class OrphanHost:
    def __init__(self, supervisor: Any, *, root: str, manager_tid: str) -> None:
        self.supervisor = supervisor
        self.manager_tid = manager_tid
        # The project's own settings (its config file, then the environment): the broker
        # may be a Postgres schema recorded in .weft/config.json.
        settings = context.resolve(root).settings
        self.broker = Broker.open(Path(root), settings)
        self.batch = Batch(self.broker)
        self.batch.listeners.append(log_task_event)
        self.consumers: dict[str, Consumer] = {}
        self.interval = settings.heartbeat_interval
        self._next_control = 0.0
        self._next_beat = 0.0
        self._record: dict[str, Any] = {}
        self._row: int | None = None
        from weft.resources.telemetry import pid_create_time

        self._create_time = pid_create_time(os.getpid())

    def take_over(self, procs: list[Any], launched: dict[str, int],
                  recent: list[tuple[Any, dict[str, Any]]]) -> None:
        entry = registry.read_all(self.broker).get(self.manager_tid)
        self._record = dict(entry.record) if entry else {"tid": self.manager_tid,
                                                         "role": "manager"}
        self._row = entry.message_id if entry else None
        self._beat("orphaned", "its manager died; the launcher finishes its tasks")
        for proc in procs:
            self.adopt(proc.launch, proc.pid, proc.started_at)
        self.batch.flush()
        self._replay_unrecorded(recent)
        tally = settle_claims(self.broker, self.batch, owner_tid=self.manager_tid,
                              my_tid=self.manager_tid, running=frozenset(self.consumers),
                              launched=launched)
        self.batch.event("manager_lost", self.manager_tid, "orphaned",
                         manager_tid=self.manager_tid, reason="dead",
                         details={**tally.as_dict(), "adopted": sorted(self.consumers),
                                  "launcher_pid": os.getpid()})
        self.batch.flush()

    def _replay_unrecorded(self, recent: list[tuple[Any, dict[str, Any]]]) -> None:
        """Record the reports of tasks that ended just before the manager died.

        The launcher sent their ``exit`` frames, but the manager died before
        writing the results (their claims are still here, unsettled). The
        outcome is known, so write it: the task ran once and ended this way.
        Output chunks the manager had not yet written are lost.
        """
        claims = {claim_identity(body, mid) for body, mid in
                  self.broker.peek_all(task_queue(self.manager_tid, "reserved"))}
        for proc, frame in recent:
            key = (proc.tid, int((proc.launch.get("task") or {}).get("attempt") or 1))
            if key not in claims:
                continue
            events = attempt_events(self.broker, *key)
            if attempt_settled(self.broker, self.batch, *key, events, self.manager_tid):
                continue
            self.adopt(proc.launch, proc.pid, proc.started_at)
            self.handle(frame)

    def adopt(self, op: dict[str, Any], pid: int, started_at: float) -> None:
        task = op["task"]
        request = SpawnRequest.model_validate_json(task["request"])
        spec = request.taskspec.model_copy(update={"tid": task["tid"],
                                                   "request_id": task.get("request_id")})
        events = attempt_events(self.broker, task["tid"], request.attempt)
        recorded = any(e.get("event") in STARTED_EVENTS for e in events)
        # Already started on record: built running. Otherwise the manager died between
        # the launcher's "started" and its log write: the start is recorded now.
        consumer = Consumer(spec, request=request, batch=self.batch, host=self,
                            claim_id=task.get("claim_id"), work_id=task.get("work_id"),
                            gpu_ids=tuple(task.get("gpu_ids") or ()),
                            state=TaskState.RUNNING if recorded else TaskState.SPAWNING,
                            pid=pid, started_at=started_at)
        if not recorded:
            consumer.started(pid, started_at)
        self.batch.event("task_adopted", consumer.tid, "running", **consumer.event_fields(),
                         reason="manager_lost")
        self.consumers[consumer.tid] = consumer

    def handle(self, frame: dict[str, Any]) -> None:
        consumer = self.consumers.get(frame.get("tid", ""))
        if consumer is None:
            return
        try:
            if frame["ev"] == "out":
                consumer.output(frame["s"], frame["d"])
            elif frame["ev"] == "exit":
                del self.consumers[consumer.tid]
                consumer.exited(frame)
        except Exception as exc:  # noqa: BLE001 - one task's report must not end the others
            log.exception("finishing task %s failed", consumer.tid)
            self.consumers.pop(consumer.tid, None)
            consumer.finish(lost("internal_error", f"{type(exc).__name__}: {exc}"))
        self.batch.flush()

    def poll(self) -> None:
        now = time.monotonic()
        for consumer in self.consumers.values():
            consumer.flush_stale_output(now)
        if self.batch:
            self.batch.flush()
        if now >= self._next_beat:
            self._beat("orphaned", "its manager died; the launcher finishes its tasks")
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

    def _beat(self, status: str, reason: str) -> None:
        """Rewrite the dead manager's record under this process (new row first, then the old)."""
        me = os.getpid()
        record = dict(self._record, status=status, stop_reason=reason, heartbeat_at=time.time(),
                      heartbeat_interval=self.interval, pid=me, host=registry.HOST,
                      pid_create_time=self._create_time, launcher_pid=me,
                      launcher_create_time=self._create_time,
                      load={"running": len(self.consumers), "reserved": {}})
        row = self.broker.write(WORKERS_REGISTRY, dumps(record))
        if self._row is not None:
            self.broker.delete(WORKERS_REGISTRY, [self._row])
        self._row = row
        self._record = record
        self._next_beat = time.monotonic() + self.interval

    def close(self) -> None:
        self.batch.flush()
        self._beat("stopped", "its manager died; the launcher finished its tasks")
        self.broker.close()
