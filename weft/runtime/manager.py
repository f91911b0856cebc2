"""Manager: a task whose work is reading spawn requests and running them.

One loop, read top to bottom in :meth:`Manager.step`:

1. collect what the launcher reports (task started, output, exit);
2. if the broker changed, answer control messages (its own and, on behalf
   of its children, theirs) and dispatch: admit and claim what fits now;
3. write everything the step produced in one batch;
4. heartbeat, recover dead peers' claims, honour the idle timeout.

A claimed request stays in ``T{mgr}.reserved`` until its attempt is settled
(result written or retry queued), so a manager that dies at any point loses
nothing and runs nothing twice (see :mod:`recovery`).
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import time
from typing import Any

from weft.broker import Broker
from weft.context import Context
from weft.errors import BrokerError
from weft.models import TaskState
from weft.names import SPAWN_REQUESTS
from weft.runtime import attempt
from weft.runtime.admission_hook import Policy, make_policy
from weft.runtime.basetask import BaseTask
from weft.runtime.consumer import Consumer
from weft.runtime.dependencies import Resolver
from weft.runtime.draining import STOP_GRACE, Drain
from weft.runtime.gate import Gate
from weft.runtime.heartbeat import Heartbeat
from weft.runtime.holding import HoldingBatch, replay_spills, spill_path
from weft.runtime.intake import Candidate, Intake
from weft.runtime.launcher import Launcher, LauncherLost
from weft.runtime.outage import Outage, sweep_stale
from weft.runtime.outcome import lost
from weft.runtime.presence import BrokerPresence
from weft.runtime.proctitle import set_title
from weft.runtime.recovery import recover_dead_managers, settle_claims
from weft.runtime.registry import LEASE_FACTOR, LEASE_SLACK
from weft.runtime.stdin_feed import StdinFeed
from weft.runtime.tasklog import log_task_event
from weft.runtime.wakeup import Backoff, ChangeSignal

log = logging.getLogger("weft.manager")

CHILD_CONTROL_EVERY = 0.05


class Manager(BaseTask):
    role = "manager"

    def __init__(self, ctx: Context, *, tid: str, options: dict[str, Any]) -> None:
        self.ctx = ctx
        self.broker = Broker.open(ctx.root, ctx.settings)
        self.holding = HoldingBatch(self.broker, spill=spill_path(ctx.root, tid))  # outages lose nothing
        super().__init__(tid, name=options.get("name") or "manager", batch=self.holding)
        self.options = options
        self.pid = os.getpid()
        self.idle_timeout = float(options.get("idle_timeout", ctx.settings.manager_idle_timeout))
        self.drain = Drain(grace=float(options.get("grace", 30.0)))  # how and why it stops
        self.consumers: dict[str, Consumer] = {}
        self.intake = Intake(self.broker, self.batch, manager_tid=tid,
                             gate=Gate.for_manager(ctx, options))
        self.dependencies = Resolver(self.broker, manager_tid=tid)
        self.policy: Policy = make_policy(ctx.settings, options, self.broker, tid)
        self.launcher = Launcher(root=str(ctx.root), manager_tid=tid)
        self.heartbeat = Heartbeat(self, interval=ctx.settings.heartbeat_interval)
        self.presence = BrokerPresence(ctx)
        self.outage = Outage(tid, root=ctx.root, max_outage=options.get("max_broker_outage"),
                             lease=ctx.settings.heartbeat_interval * LEASE_FACTOR + LEASE_SLACK)
        self.backoff = Backoff(signal=ChangeSignal.for_broker(self.broker, untimed=True))  # commits wake us
        self.last_activity = time.monotonic()
        self._data_version: int | None = None
        self._next_child_control = 0.0
        self._child_control_due = False
        self._selector = selectors.DefaultSelector()
        self._watched: tuple[int, int] | None = None
        self._awaiting_go: list[str] = []  # started tasks whose start is not yet on record
        self.batch.listeners.append(log_task_event)
        self.stdin_feed = StdinFeed(self.broker)
        self.metrics = _start_metrics(self)  # None unless started with --metrics-addr

    # -- lifecycle --------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.launcher.start()
        self.state = TaskState.RUNNING
        self.update_title()
        self.heartbeat.beat(status="active")
        self.batch.event("manager_started", self.tid, "running", pid=self.pid,
                         details={"launcher_pid": self.launcher.pid,
                                  "capacity": self.policy.capacity_record()})
        replay_spills(self.broker, self.ctx.root)  # outcomes an earlier manager could not write
        sweep_stale()  # outage files of managers SIGKILLed during an outage
        recover_dead_managers(self.broker, self.batch, self.tid)
        self.batch.flush()
        try:
            while not self._finished():
                if self.outage.active:
                    self._ride_out()
                    continue
                try:
                    self.step()
                except BrokerError as exc:
                    self.outage.begin(exc, held=self.holding.held, now=time.monotonic())
        finally:
            self._shutdown()
        return 0

    def _ride_out(self) -> None:
        """The broker is away: children run on, their outcomes are held; retry with back-off."""
        self._wait(min(0.5, self.outage.wait_time(time.monotonic())))
        self._collect_launcher()
        now = time.monotonic()
        self.last_activity = now  # an outage is not idleness
        self._enforce_stop(now)
        if self.outage.expired(now) and not self.drain.stopping:
            log.error("broker unreachable for longer than --max-broker-outage: stopping")
            self.drain.stop_unless_stopping("broker outage", now)
        if self.outage.due(now) and self.outage.try_end(now, self.holding, self._back_online):
            self._data_version = None

    def _back_online(self) -> None:
        """The first writes after an outage; a BrokerError means it goes on."""
        self._flush()  # and the go-aheads of tasks whose start it records
        self.heartbeat.beat(status="active")
        # A step the outage cut short may have claimed a request it never launched.
        settle_claims(self.broker, self.batch, owner_tid=self.tid, my_tid=self.tid,
                      running=frozenset(self.consumers))
        self.batch.flush()

    def step(self) -> None:
        self._wait(self.backoff.timeout(idle=not self.consumers))
        active = self._collect_launcher()
        now = time.monotonic()
        version = self.broker.data_version()
        changed = version != self._data_version or version is None
        self._data_version = version
        if changed:
            self.backoff.noticed()
        due = self.intake.next_due is not None and self.intake.next_due <= time.time()
        due |= self.policy.retry_due(now)  # deferred on live readings: look again
        wake = changed or due or active
        if wake:
            active |= self.serve_control(self.broker)
        # Children's control queues are read at most every CHILD_CONTROL_EVERY;
        # a change seen in between is remembered, not lost.
        self._child_control_due |= wake
        if self._child_control_due and self.consumers and now >= self._next_child_control:
            self._child_control_due = False
            self._next_child_control = now + CHILD_CONTROL_EVERY
            active |= self._serve_child_control()
        if wake and not self.drain.stopping and self.state == TaskState.RUNNING:
            if self._dispatch():
                active = True
                self._flush_link()  # the launcher forks while this step commits
        if self.stdin_feed.wanted:
            active |= self._pump_stdin()
        for consumer in self.consumers.values():
            consumer.flush_stale_output(now)
        if self.batch or self._awaiting_go:
            self._flush()
            active = True
        if (wake or active) and self.dependencies.poll(now):
            self._data_version, active = None, True  # released requests: dispatch them now
        if active:
            self.last_activity = now
            self.backoff.reset()
        if self.heartbeat.due(now):
            self._stop_if_broker_lost(now)
            self.heartbeat.beat(status="active")
            self._check_claims()
            if self.outage.may_judge_peers(now) and \
                    recover_dead_managers(self.broker, self.batch, self.tid):
                self._data_version = None
            self.batch.flush()
            if self.metrics is not None:
                self.metrics.sample()
        self._enforce_stop(now)

    def _wait(self, timeout: float) -> None:
        if self.launcher.link is None:
            self.backoff.sleep(timeout)
            return
        events = selectors.EVENT_READ
        if self.launcher.wants_write:
            events |= selectors.EVENT_WRITE
        fd = self.launcher.fileno()
        if self._watched != (fd, events):
            if self._watched is not None:
                self._selector.unregister(self._watched[0])
            self._selector.register(fd, events)
            self._watched = (fd, events)
        self.backoff.watch(self._selector)
        self._selector.select(timeout)
        self.backoff.woke()

    def _finished(self) -> bool:
        done = self.drain.done(running=bool(self.consumers))
        if done is not None:
            return done
        if self.idle_timeout > 0 and not self.consumers and self.intake.next_due is None:
            if time.monotonic() - self.last_activity >= self.idle_timeout:
                self.drain.reason = "idle_timeout"
                return True
        return False

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.drain.on_signal(signum, time.monotonic())

    def _enforce_stop(self, now: float) -> None:
        """Draining: let children finish within the grace, then STOP, then KILL."""
        phase = self.drain.next_phase(now, running=bool(self.consumers))
        for tid in list(self.consumers) if phase else ():
            if phase == "KILL":
                self._signal_quietly(tid, "KILL", "kill")
            else:
                self._signal_quietly(tid, "TERM", "stop", STOP_GRACE)

    def _stop_if_broker_lost(self, now: float) -> None:
        """Our broker file was deleted or replaced: nobody can reach us; stop everything now."""
        why = self.presence.lost()
        if why is not None and not self.drain.stopping:
            log.error("%s: stopping this manager and its tasks", why)
            self.drain.stop_unless_stopping(f"broker lost: {why}", now, grace=0.0)

    def _shutdown(self) -> None:
        reason = self.drain.reason or "exit"
        try:
            self.launcher.shutdown()
        except Exception:  # noqa: BLE001 - keep going: we must still write 'stopped'
            self.launcher.reap()
        for tid in list(self.consumers):
            self._finish_lost(tid, "manager exited before the task reported")
            self.drain.ended[tid] = "failed"
        self.state = TaskState.COMPLETED
        self.batch.event("manager_stopped", self.tid, "stopped", pid=self.pid, reason=reason,
                         details={"drained": self.drain.ended} if self.drain.ended else None)
        try:
            self.batch.flush()
            self.heartbeat.beat(status="stopped", stop_reason=reason)
        except BrokerError:  # the broker is away: keep what we hold for the next manager
            log.error("exiting with the broker unreachable: %d record(s) spilled to %s",
                      self.holding.spill_all(), self.holding.spill)
        self.outage.close()
        if self.metrics is not None:
            self.metrics.close()
        self.broker.close()

    # -- launcher frames ----------------------------------------------------
    def _collect_launcher(self) -> bool:
        try:
            frames = self.launcher.receive()
        except LauncherLost:
            self._launcher_lost()
            return True
        for frame in frames:
            try:
                self._on_frame(frame)
            except Exception as exc:  # noqa: BLE001 - one task's report must not end the manager
                self._task_broke(str(frame.get("tid", "")), exc)
        # A forked task waits for the go-ahead until its task_started event is
        # committed: recovery tells "never started" (requeue) from "started"
        # (never again) by the log, so the two must never disagree. The go-ahead
        # goes out after the step's one flush (:meth:`_flush`), which commits the
        # starts together with everything else the step wrote.
        self._awaiting_go.extend(f["tid"] for f in frames
                                 if f.get("ev") == "started" and f["tid"] in self.consumers)
        return bool(frames)

    def _flush(self) -> None:
        requeued = self.batch.writes_to(SPAWN_REQUESTS)
        self.batch.flush()
        if requeued:  # our own commits do not move data_version: look again
            self._data_version = None
        if self._awaiting_go:
            tids, self._awaiting_go = self._awaiting_go, []
            for tid in tids:
                consumer = self.consumers.get(tid)
                if consumer is None or consumer.lost:
                    continue  # not ours any more: it never gets to run
                try:
                    self.launcher.go(tid)
                except LauncherLost:
                    return  # its processes exit without running: handled as a lost launcher
            self._flush_link()

    def _flush_link(self) -> None:
        """Write the frames queued for the launcher this step (launches, go-aheads)."""
        try:
            self.launcher.flush()
        except LauncherLost:
            self._launcher_lost()

    def _task_broke(self, tid: str, exc: BaseException) -> None:
        """Handling one task failed: fail that task with the reason and carry on."""
        log.exception("handling task %s failed; the task fails, the manager carries on", tid)
        consumer = self.consumers.get(tid)
        if consumer is None:
            return
        self._signal_quietly(tid, "KILL", "internal_error")
        try:
            self._finish_lost(tid, f"{type(exc).__name__}: {exc}", reason="internal_error")
        except Exception:  # noqa: BLE001 - the plainest settle there is, then move on
            log.exception("could not settle task %s the usual way; failing it plainly", tid)
            self.consumers.pop(tid, None)
            self.policy.release(tid)
            if consumer.claim is not None:
                attempt.fail_now(self.broker, consumer.claim, error=f"{type(exc).__name__}: {exc}",
                                 attempt=consumer.attempt, manager_tid=self.tid)

    def _check_claims(self) -> None:
        """Read back every running attempt's claim: one a peer took (this manager was
        frozen past its lease) is not ours to settle; its process is stopped."""
        for consumer in list(self.consumers.values()):
            if consumer.claim is None or attempt.still_owned(self.broker, consumer.claim):
                continue
            self.consumers.pop(consumer.tid, None)
            self.policy.release(consumer.tid)
            consumer._lost()

    def _on_frame(self, frame: dict[str, Any]) -> None:
        consumer = self.consumers.get(frame.get("tid", ""))
        if consumer is None:
            return
        kind = frame["ev"]
        if kind == "out":
            consumer.output(frame["s"], frame["d"])
        elif kind == "started":
            consumer.started(frame["pid"], frame["t"])
        elif kind == "exit":
            outcome = consumer.exited(frame)
            self.drain.ended_while_draining(consumer.tid, consumer.state.value)
            self.policy.release(consumer.tid)
            del self.consumers[consumer.tid]
            self.policy.observe(consumer, outcome)
        elif kind == "stdin_wanted":
            self.stdin_feed.want(consumer.tid)
        elif kind == "spawn_failed":
            self._finish_lost(consumer.tid, frame.get("error"), reason="spawn_error")

    def _pump_stdin(self) -> bool:
        try:
            return self.stdin_feed.pump(self.launcher, self.consumers)
        except LauncherLost:
            self._launcher_lost()
            return True

    def _launcher_lost(self) -> None:
        pids = [c.pid for c in self.consumers.values() if c.pid]
        for tid in list(self.consumers):
            self._finish_lost(tid, "the task's launcher process died")
        self.launcher.reap()
        if self._watched is not None:
            try:
                self._selector.unregister(self._watched[0])
            except (KeyError, ValueError, OSError):
                pass
            self._watched = None
        Launcher.kill_groups(pids)
        self.batch.event("launcher_restarted", self.tid, "running", pid=self.pid)
        self.launcher = Launcher(root=str(self.ctx.root), manager_tid=self.tid)
        self.launcher.start()

    def _finish_lost(self, tid: str, error: str | None, reason: str = "consumer_lost") -> None:
        consumer = self.consumers.pop(tid, None)
        if consumer is None:
            return
        consumer.finish(lost(reason, error))
        self.policy.release(tid)

    def signal(self, tid: str, sig: str, reason: str | None, grace: float | None = None) -> None:
        """ConsumerHost: how a child's STOP/KILL/PAUSE reach its process group."""
        self.launcher.signal(tid, sig, reason, grace)

    def _signal_quietly(self, tid: str, sig: str, reason: str, grace: float | None = None) -> None:
        try:
            self.launcher.signal(tid, sig, reason, grace)
        except LauncherLost:
            pass

    @property
    def manager_tid(self) -> str:
        return self.tid

    # -- control ----------------------------------------------------------
    def _serve_child_control(self) -> bool:
        """Children's control, answered on their behalf (they are plain processes)."""
        served = False
        for consumer in list(self.consumers.values()):
            served |= consumer.serve_control(self.broker)
        return served

    def on_stop(self, reason: str | None) -> str:
        self.drain.stop(reason or "stop requested", time.monotonic())
        return f"draining {len(self.consumers)} running task(s)"

    def on_kill(self, reason: str | None) -> str:
        self.drain.kill(reason or "kill requested")
        return f"killing {len(self.consumers)} running task(s)"

    def on_pause(self, reason: str | None) -> str:
        if self.state == TaskState.PAUSED:
            return "already paused"
        self.transition(TaskState.PAUSED, "manager_paused")
        return "paused: not claiming new tasks"

    def on_resume(self, reason: str | None) -> str:
        if self.state != TaskState.PAUSED:
            return "not paused"
        self.transition(TaskState.RUNNING, "manager_resumed")
        return "resumed"

    def status_details(self) -> dict[str, Any]:
        return {
            "role": self.role, "name": self.name, "host": self.heartbeat.host,
            "started_at": self.heartbeat.started_at,
            "running": sorted(self.consumers), "launcher_pid": self.launcher.pid,
            "draining": self.drain.stopping, "queues": self.queues,
            "load": self.policy.load_record(),
        }

    def update_title(self) -> None:
        set_title(self.title())

    # -- dispatch -----------------------------------------------------------
    def _dispatch(self) -> bool:
        if not self.policy.wants_dispatch(len(self.consumers), time.monotonic()):
            return False
        launched = False
        now = time.time()
        pids = [c.pid for c in self.consumers.values() if c.pid]
        for cand, decision in self.policy.plan(self.intake.runnable(now), now, pids):
            if decision.kind == "admit":
                launched |= self._claim_and_launch(cand, tuple(decision.gpu_ids))
            elif decision.kind == "reject":
                self.policy.reject(self, cand, decision.reason)
            else:
                self.policy.defer(self, cand, decision.reason)
        return launched

    def _claim_and_launch(self, cand: Candidate, gpu_ids: tuple[int, ...]) -> bool:
        claim = attempt.claim(self.broker, cand.message_id, self.tid)
        self.intake.forget(cand.message_id)
        if claim is None:
            return False  # another manager won the race
        try:
            if not self.policy.admit(self, cand, gpu_ids):
                return False  # its group filled up or paused since the plan: claim put back
            self._launch(cand, claim.message_id, gpu_ids)
        except Exception as exc:  # noqa: BLE001 - one request must not end the manager
            log.exception("launching task %s failed", cand.tid)
            if cand.tid in self.consumers:
                self._finish_lost(cand.tid, f"{type(exc).__name__}: {exc}",
                                  reason="internal_error")
            else:
                self.policy.release(cand.tid)
                attempt.dead_letter(self.broker, claim, problem=f"cannot launch: {exc}",
                                    manager_tid=self.tid, reason="internal_error",
                                    attempt=cand.request.attempt)
        return True

    def _launch(self, cand: Candidate, claim_id: int, gpu_ids: tuple[int, ...]) -> None:
        work_id = attempt.hand_over(self.broker, cand.tid, cand.request.inbox_message,
                                    attempt=cand.request.attempt)
        consumer = Consumer(cand.spec, request=cand.request, batch=self.batch, host=self,
                            claim_id=claim_id, work_id=work_id, gpu_ids=gpu_ids)
        consumer.spawning()
        self.consumers[consumer.tid] = consumer
        env, unset = consumer.child_env(str(self.ctx.root))
        op = consumer.launch_op(env, unset, stdin=cand.request.inbox_message, request_json=cand.body)
        if self.intake.gate is not None:  # secrets' values, the allow-list
            self.intake.gate.prepare(cand.spec, op)
        try:
            self.launcher.launch(op)
        except LauncherLost:
            self._launcher_lost()


def _start_metrics(manager: Manager) -> Any:
    if not manager.options.get("metrics_addr"):
        return None
    from weft.metrics.server import start

    return start(manager)
