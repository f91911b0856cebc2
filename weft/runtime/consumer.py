"""Consumer: the runtime of one task, from launch to its final result.

A Consumer is a BaseTask whose process is forked by the launcher (see
:mod:`weft.runtime.supervisor` and :mod:`weft.runtime.child`). The object
itself lives in the process that hosts the task's broker work: normally its
manager, which writes the task's chunks, events and result in batches (a
fresh process opening its own broker connection would cost several times
the fork, docs/performance.md); or, when the manager has died, the orphaned
launcher (:mod:`weft.runtime.orphan`). Either way the protocol is the same:
the work item sits in ``T{tid}.reserved`` until the result is on
``T{tid}.outbox``.
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

from weft.broker.blobs import BlobStore, blob_store, chunk_bytes, max_result_bytes
from weft.errors import WeftError
from weft.models import SpawnRequest, TaskSpec, TaskState, can_transition
from weft.names import task_queue
from weft.runtime import attempt, result_blob
from weft.runtime.attempt import Claim, ResultTooLarge
from weft.runtime.basetask import BaseTask
from weft.runtime.batch import Batch, dumps
from weft.runtime.outcome import Outcome, classify
from weft.runtime.spool import OutputSpool, value_fields

STOP_GRACE = 5.0
FINAL_EVENTS = {
    TaskState.COMPLETED: "task_completed",
    TaskState.FAILED: "task_failed",
    TaskState.TIMEOUT: "task_timeout",
    TaskState.KILLED: "task_killed",
    TaskState.CANCELLED: "task_cancelled",
}


class ConsumerHost(Protocol):
    @property
    def manager_tid(self) -> str: ...

    def signal(self, tid: str, sig: str, reason: str | None, grace: float | None = None) -> None: ...


# How a Consumer is brought to the state it is built in, one table step at a time.
_PATHS = {TaskState.SPAWNING: (TaskState.SPAWNING,),
          TaskState.RUNNING: (TaskState.SPAWNING, TaskState.RUNNING)}


class Consumer(BaseTask):
    role = "task"

    def __init__(self, spec: TaskSpec, *, request: SpawnRequest, batch: Batch, host: ConsumerHost,
                 claim_id: int | None = None, work_id: int | None = None,
                 gpu_ids: tuple[int, ...] = (), state: TaskState = TaskState.SPAWNING,
                 pid: int | None = None, started_at: float | None = None) -> None:
        """The one way to build a Consumer: a manager's new attempt (``spawning``), or
        one that already runs (``running``: adopted by an orphaned launcher, or
        finished by recovery). The state is reached through the transition table."""
        assert spec.tid is not None
        super().__init__(spec.tid, name=spec.name, batch=batch)
        self.spec = spec
        self.request = request
        self.host = host
        self.work_id = work_id
        # The spawn request this attempt was claimed as: it stays in the host
        # manager's reserved queue until the attempt is settled (result or retry),
        # so recovery can always tell what a dead host was responsible for.
        self.claim: Claim | None = None
        self.claim_id = claim_id
        self.gpu_ids = gpu_ids
        self.attempt = request.attempt
        self.request_id = request.request_id or spec.request_id
        self.pid = pid
        self.started_at: float | None = started_at
        self.seq = 0
        self.paused = False
        self.spool = OutputSpool(self.blobs, chunk=chunk_bytes(batch.broker))
        self.lost = False
        for step in _PATHS[state]:
            if not can_transition(self.state, step):
                raise RuntimeError(f"illegal transition {self.state} -> {step} for {self.tid}")
            self.state = step

    @property
    def claim_id(self) -> int | None:
        return None if self.claim is None else self.claim.message_id

    @claim_id.setter
    def claim_id(self, message_id: int | None) -> None:
        self.claim = None if message_id is None else Claim(
            task_queue(self.host.manager_tid, "reserved"), message_id)

    def event_fields(self) -> dict[str, Any]:
        return {"pid": self.pid, "name": self.name, "request_id": self.request_id,
                "parent_tid": self.spec.parent_tid, "manager_tid": self.host.manager_tid,
                "attempt": self.attempt}

    # -- launch -----------------------------------------------------------
    def child_env(self, context_root: str) -> tuple[dict[str, str], list[str]]:
        """What the task's environment adds to (and removes from) the launcher's own.

        Only the difference travels to the launcher: the base environment is
        the one the manager was started with, which the launcher inherited.
        """
        env = dict(self.spec.env)
        env["WEFT_TASK_TID"] = self.tid
        env["WEFT_CONTEXT"] = context_root
        env["WEFT_MANAGER_TID"] = self.host.manager_tid
        env["WEFT_ATTEMPT"] = str(self.attempt)
        unset = []
        if self.request_id:
            env["WEFT_REQUEST_ID"] = self.request_id
        else:
            unset.append("WEFT_REQUEST_ID")
        if self.spec.parent_tid:
            env["WEFT_PARENT_TID"] = self.spec.parent_tid
        else:
            unset.append("WEFT_PARENT_TID")
        if self.gpu_ids or self.spec.resources.gpus:
            visible = ",".join(str(i) for i in self.gpu_ids)
            env["CUDA_VISIBLE_DEVICES"] = visible
            env["NVIDIA_VISIBLE_DEVICES"] = visible
        return env, unset

    def launch_op(self, env: dict[str, str], unset: list[str], *, stdin: Any,
                  request_json: str | None = None) -> dict[str, Any]:
        spec = self.spec
        argv: list[str] | None = None
        if spec.command is not None:
            argv = ["/bin/sh", "-c", spec.command[0]] if spec.shell else list(spec.command)
        limits: dict[str, Any] = {}
        if spec.effective_memory_limit:
            limits["memory_mb"] = spec.effective_memory_limit
        if spec.limits.cpu_seconds:
            limits["cpu_seconds"] = spec.limits.cpu_seconds
        op: dict[str, Any] = {
            "op": "launch", "tid": self.tid, "name": spec.name, "argv": argv,
            "function": spec.function, "args": list(spec.args), "kwargs": spec.kwargs,
            "serializer": spec.serializer,
            "env": env, "unset_env": unset, "cwd": spec.cwd, "timeout": spec.timeout, "limits": limits,
            "capture": spec.stream_output,
            "cpus": spec.resources.cpus,  # cpu.max when tasks get their own cgroup
            "max_result": max_result_bytes(self.batch.broker),
            # Where the task process puts a result larger than a chunk itself (result_blob).
            "result_store": {"root": str(self.batch.broker.root or ""),
                             "backend": self.batch.broker.backend, "chunk": self.spool.chunk},
            # What an orphaned launcher needs to finish the task on its own
            # (the request as it was queued; the tid is filled in on adoption):
            "task": {"request": request_json or self.request.model_dump_json(exclude_none=True),
                     "tid": self.tid, "request_id": self.request_id, "attempt": self.attempt,
                     "work_id": self.work_id, "gpu_ids": list(self.gpu_ids),
                     "claim_id": self.claim_id},
        }
        if stdin is not None:
            op["stdin"] = stdin if isinstance(stdin, str) else dumps(stdin)
        elif self.request.stdin == "stream" and self.attempt == 1:
            op["stdin_stream"] = True  # chunks come from T{tid}.stdin (weft.runtime.stdin_feed)
        return op

    def spawning(self) -> None:
        self.batch.event("task_spawning", self.tid, TaskState.SPAWNING.value,
                         target=self.spec.summary() if not self.spec.name else None,
                         resources=self.spec.resources.model_dump(),
                         gpus=list(self.gpu_ids) or None, **self.event_fields())

    def started(self, pid: int, at: float) -> None:
        """Record the start, only while the claim is still ours: a manager that woke
        from a freeze must not log a start for an attempt a peer has taken over."""
        self.pid = pid
        self.started_at = at
        if self.claim is None:
            self.transition(TaskState.RUNNING, "task_started")
            return
        with self.batch.fenced(self.claim.queue, self.claim.message_id, keep=True,
                               on_lost=self._lost):
            self.transition(TaskState.RUNNING, "task_started")

    def output(self, stream: str, data: bytes) -> None:
        """Bytes the task wrote, in the order read: outbox messages (inline or blob references)."""
        self._write_output(self.spool.add(stream, data))

    def flush_stale_output(self, now: float) -> None:
        """Output that has waited ``linger`` for a full blob is written now, so followers see it."""
        if self.spool.stale(now):
            self._write_output(self.spool.flush())

    def _write_output(self, pieces: list[tuple[str, dict[str, Any]]]) -> None:
        for stream, fields in pieces:
            self.seq += 1
            self.batch.write(self.queues["outbox"], {"v": 1, "type": "stream", "stream": stream,
                                                     "seq": self.seq, **fields,
                                                     "attempt": self.attempt})

    # -- ending -----------------------------------------------------------
    def blobs(self) -> BlobStore:
        return blob_store(self.batch.broker)

    def exited(self, frame: dict[str, Any]) -> Outcome:
        self._write_output(self.spool.flush())
        outcome = classify(frame)
        self.finish(outcome, peak_rss_mb=frame.get("peak_rss_mb"), cpu_time_s=frame.get("cpu_s"),
                    finished_at=frame.get("t"))
        return outcome

    def finish(self, outcome: Outcome, *, peak_rss_mb: float | None = None,
               cpu_time_s: float | None = None, finished_at: float | None = None) -> None:
        """Settle the attempt: result (or retry) and event, fenced on its claim."""
        if self.state.terminal:
            return
        assert self.claim is not None, f"attempt of {self.tid} settled without a claim"
        outcome = result_blob.admit(outcome, self.blobs, max_result_bytes(self.batch.broker))
        if self._maybe_retry(outcome):
            return
        result = {
            "v": 1, "type": "result", "tid": self.tid, "status": outcome.state.value,
            "exit_code": outcome.exit_code, "error": outcome.error,
            **self._value_fields(outcome),
            "traceback": outcome.traceback, "reason": outcome.reason, "signal": outcome.signal,
            "started_at": self.started_at, "finished_at": finished_at or time.time(),
            "peak_rss_mb": peak_rss_mb, "cpu_time_s": cpu_time_s, "attempt": self.attempt,
            "request_id": self.request_id, "name": self.name,
        }
        if outcome.exception is not None:
            result["exception"] = outcome.exception
        try:
            attempt.settle_final(self.batch, self.claim, result=result, work_id=self.work_id,
                                 event=lambda: self._final_event(outcome, peak_rss_mb, cpu_time_s),
                                 on_lost=self._lost)
        except ResultTooLarge as exc:
            # One big value must not end the host: the task fails, nothing else does.
            self.finish(Outcome(TaskState.FAILED, 1, reason="result_too_large",
                                error=f"the task's result could not be stored: {exc}"),
                        peak_rss_mb=peak_rss_mb, cpu_time_s=cpu_time_s, finished_at=finished_at)

    def _final_event(self, outcome: Outcome, peak_rss_mb: float | None,
                     cpu_time_s: float | None) -> None:
        self.transition(outcome.state, FINAL_EVENTS[outcome.state], exit_code=outcome.exit_code,
                        reason=outcome.reason, error=attempt.short(outcome.error),
                        peak_rss_mb=peak_rss_mb, cpu_time_s=cpu_time_s)  # for metrics

    def _value_fields(self, outcome: Outcome) -> dict[str, Any]:
        if outcome.value_blob is not None:  # stored by the task process, admitted above
            return {"value": None, "value_blob": outcome.value_blob}
        try:
            return value_fields(outcome.value, self.blobs, chunk=self.spool.chunk)
        except (WeftError, OSError) as exc:  # the store failed: the task fails, the host goes on
            return {"value": None, "error": f"cannot store the result: {exc}"}

    def _maybe_retry(self, outcome: Outcome) -> bool:
        policy = self.spec.retry
        key = outcome.retry_key
        if key is None or key not in policy.retry_on or self.attempt > policy.retries:
            return False
        assert self.claim is not None
        delay = policy.delay_before(self.attempt + 1)
        retry = self.request.model_copy(update={
            "taskspec": self.spec,  # carries the tid: the retry is the same task
            "attempt": self.attempt + 1,
            "not_before": time.time() + delay if delay > 0 else None,
        })

        def event() -> None:
            self.transition(TaskState.QUEUED, "task_retrying", exit_code=outcome.exit_code,
                            reason=outcome.reason or key, error=attempt.short(outcome.error),
                            details={"next_attempt": self.attempt + 1, "delay": delay})

        attempt.settle_retry(self.batch, self.claim, request=retry, work_id=self.work_id,
                             event=event, on_lost=self._lost)
        return True

    def _lost(self) -> None:
        """Someone else settled this attempt (a peer recovered the claim, a client
        cancelled it): nothing was written; stop the process if it still runs."""
        if self.lost or self.claim is None:
            return
        self.lost = True
        attempt.lost_claim_event(self.batch, self.tid, self.state.value, self.claim,
                                 **self.event_fields())
        try:
            self.host.signal(self.tid, "KILL", "claim_lost")
        except Exception:  # noqa: BLE001 - the launcher may be gone: nothing runs there then
            pass

    # -- control ----------------------------------------------------------
    def on_stop(self, reason: str | None) -> str:
        self.host.signal(self.tid, "TERM", "stop", STOP_GRACE)
        return "stopping"

    def on_kill(self, reason: str | None) -> str:
        self.host.signal(self.tid, "KILL", "kill")
        return "killing"

    def on_pause(self, reason: str | None) -> str:
        if self.state == TaskState.PAUSED:
            return "already paused"
        self.host.signal(self.tid, "STOP", None)
        self.transition(TaskState.PAUSED, "task_paused")
        return "paused"

    def on_resume(self, reason: str | None) -> str:
        if self.state != TaskState.PAUSED:
            return "not paused"
        self.host.signal(self.tid, "CONT", None)
        self.transition(TaskState.RUNNING, "task_resumed")
        return "resumed"

    def status_details(self) -> dict[str, Any]:
        now = time.time()
        return {
            "role": self.role, "name": self.name, "target": self.spec.summary(),
            "attempt": self.attempt, "started_at": self.started_at,
            "elapsed": round(now - self.started_at, 3) if self.started_at else None,
            "manager_tid": self.host.manager_tid, "request_id": self.request_id,
            "gpus": list(self.gpu_ids), "host_pid": os.getpid(),
        }
