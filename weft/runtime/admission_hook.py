"""The manager's admission seam: what fits now, what waits, what never will.

The manager asks its :class:`Policy` and does what it says. The policy only
feeds and records; every decision is made by the pure functions of
:mod:`weft.resources.admission`:

* **inputs** -- the manager's fixed capacity (detected once, capped by the
  ``weft worker start`` options), the reservations of its running children,
  a host snapshot cached for :data:`READINGS_TTL` seconds, the thresholds,
  and the pids of its children (so NVML memory used by weft's own tasks is
  not mistaken for someone else's);
* **plan** -- one dispatch step decides every runnable request in priority,
  ageing and FIFO order, with backfill, counting each admission before the
  next (:func:`weft.resources.plan`);
* **records** -- ``task_admitted`` on admission, ``task_deferred`` once per
  distinct reason per task (also while it waits for an absent manager that
  could run it), ``task_rejected`` through :mod:`.rejection` when no manager
  seen within the history window could ever run it; and the ``capabilities``
  and ``load`` of the registry record.

Waiting for a free concurrency slot is ordinary queueing, not a deferral:
it is not logged (a deep queue would otherwise log one event per task).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from weft.broker import Broker
from weft.names import SPAWN_REQUESTS
from weft.resources import (
    Decision,
    Defer,
    HostTelemetry,
    Request,
    Reservation,
    Thresholds,
    detect_capacity,
    make_gpu_reader,
    plan,
    process_tree_pids,
)
from weft.resources.project_fit import Seen
from weft.runtime import gpu_load, groups, registry, rejection
from weft.runtime.finish_hook import FinishHook
from weft.settings import Settings

__all__ = ["READINGS_TTL", "Policy", "make_policy", "submitted_at"]

log = logging.getLogger("weft.manager")

READINGS_TTL = 1.0  # seconds a host snapshot is reused
RETRY_EVERY = 1.0  # while something is deferred, re-plan at least this often
SWEEP_EVERY = 1.0  # while full, still look for never-fitting requests this often
WAIT_RECHECK = 30.0  # a request waiting for an absent manager is judged again this often
_NS = 1e9


def submitted_at(cand: Any) -> float:
    """When a request started waiting (epoch s), for FIFO order and ageing.

    A message id is the broker's hybrid timestamp: nanoseconds since the
    epoch with a counter in the low bits, so it doubles as the submit time.
    A delayed request starts waiting at its ``not_before``.
    """
    return max(cand.message_id / _NS, cand.request.not_before or 0.0)


def thresholds_from(options: dict[str, Any]) -> Thresholds:
    base = Thresholds()
    pick = {
        "max_cpu_percent": ("max_cpu_percent", float),
        "min_free_memory_mb": ("min_free_memory", int),
        "max_gpu_util_percent": ("max_gpu_util", float),
        "vram_headroom_mb": ("vram_headroom", int),
    }
    values = {field: cast(options[key]) for field, (key, cast) in pick.items()
              if options.get(key) is not None}
    return dataclasses.replace(base, **values)


class Policy:
    """Resource-aware admission for one manager (see the module docstring)."""

    def __init__(self, settings: Settings, options: dict[str, Any],
                 broker: Broker | None = None, manager_tid: str | None = None) -> None:
        self.groups = groups.GroupGate(broker, manager_tid) if broker is not None else None
        self.finish_hook = (FinishHook(settings.on_finish, settings.on_finish_timeout,
                                       cwd=settings.context)
                            if settings.on_finish else None)
        self.gpu_reader = make_gpu_reader(settings.gpu_simulate)
        self.telemetry = HostTelemetry(self.gpu_reader, ttl=READINGS_TTL)
        self.capacity = detect_capacity(
            self.telemetry.read(time.monotonic()),
            cpus=options.get("cpus"),
            memory_mb=options.get("memory_mb"),
            gpus=options.get("gpus"),
            gpu_ids=options.get("gpu_ids"),
            max_concurrency=options.get("max_concurrency") or settings.max_concurrency,
        )
        self.thresholds = thresholds_from(options)
        self.reservations: dict[str, Reservation] = {}
        self.retry_at: float | None = None  # monotonic; re-plan then even if nothing changed
        self._next_sweep = 0.0
        self._deferred: dict[str, set[str]] = {}  # reasons already logged, per task
        self._requests: dict[int, tuple[str, Request]] = {}  # id -> (body, request)
        self._project: rejection.ProjectManagers | None = None
        self.history_window = settings.manager_history_window
        log.info("capacity: %s (GPUs from %s)", self.capacity.to_record(), self.gpu_reader.source)

    @property
    def max_concurrency(self) -> int:
        return self.capacity.max_concurrency

    # -- when to plan ------------------------------------------------------
    def has_room(self, running: int) -> bool:
        return running < self.capacity.max_concurrency

    def wants_dispatch(self, running: int, now: float) -> bool:
        """Plan when a slot is free; while full, still once per
        :data:`SWEEP_EVERY` so never-fitting requests are refused promptly."""
        if self.has_room(running):
            return True
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY
            return True
        # Nothing can start before a task ends (which wakes the manager anyway),
        # but a request that arrived since the last sweep gets the next one.
        self.retry_at = self._next_sweep
        return False

    def retry_due(self, now: float) -> bool:
        return self.retry_at is not None and now >= self.retry_at

    # -- deciding ----------------------------------------------------------
    def plan(self, cands: Sequence[Any], now: float,
             child_pids: Sequence[int] = ()) -> list[tuple[Any, Decision]]:
        """Decide every candidate for this step, in the order to act on them."""
        mono = time.monotonic()
        if self.finish_hook is not None and self.finish_hook.running:
            self.finish_hook.reap(mono)
        self.retry_at = None
        if not cands:
            return []
        readings = self.telemetry.read(mono)
        own: frozenset[int] = frozenset()
        if child_pids and any(dev.processes for dev in readings.gpus):
            own = frozenset(p for pid in child_pids for p in process_tree_pids(pid))
        held_back: list[tuple[Any, Decision]] = []
        if self.groups is not None:
            cands, waiting = self.groups.split(cands)
            held_back = [(c, Defer(reason)) for c, reason in waiting]
        by_key = {c.tid: c for c in cands}
        requests = [self._request(c) for c in cands]
        decided = plan(requests, self.capacity, list(self.reservations.values()), readings,
                       self.thresholds, now, own_pids=own)
        if any(isinstance(d, Defer) and not d.reason.startswith("concurrency:")
               for _, d in decided):
            self.retry_at = mono + RETRY_EVERY
        return [(by_key[req.key], decision) for req, decision in decided] + held_back

    def _request(self, cand: Any) -> Request:
        """A candidate as admission sees it; cached, the queue is re-planned often."""
        cached = self._requests.get(cand.message_id)
        request = cached[1] if cached is not None and cached[0] == cand.body else None
        if request is None:
            if len(self._requests) > 4096:
                self._requests.clear()
            request = Request.from_resources(cand.tid, cand.spec.resources, cand.priority,
                                             submitted_at(cand))
            self._requests[cand.message_id] = (cand.body, request)
        return request

    def decide(self, cand: Any, now: float) -> Decision:
        """One candidate on its own (the plan of a one-request queue)."""
        return self.plan([cand], now)[0][1]

    # -- acting on decisions -----------------------------------------------
    def reserve(self, cand: Any, gpu_ids: tuple[int, ...]) -> None:
        request = self._request(cand)
        self._requests.pop(cand.message_id, None)  # claimed: it leaves the queue
        self.reservations[cand.tid] = request.reservation(gpu_ids)
        if self.groups is not None:
            self.groups.started(cand.tid, cand.spec)
        self._deferred.pop(cand.tid, None)

    def admit(self, manager: Any, cand: Any, gpu_ids: tuple[int, ...]) -> bool:
        """Hold the request's resources and log ``task_admitted``; False (the
        claim put back) when its group filled up or paused since the plan."""
        if self.groups is not None and not self.groups.confirm(
                cand, manager.queues["reserved"], SPAWN_REQUESTS):
            return False
        self.reserve(cand, gpu_ids)
        manager.batch.event("task_admitted", cand.tid, "spawning", manager_tid=manager.tid,
                            request_id=cand.spec.request_id, name=cand.spec.name,
                            parent_tid=cand.spec.parent_tid, attempt=cand.request.attempt,
                            resources=cand.spec.resources.model_dump(), gpus=list(gpu_ids),
                            priority=cand.priority, group=groups.group_of(cand.spec),
                            task=_task_label(cand.spec))
        return True

    def release(self, tid: str) -> None:
        self.reservations.pop(tid, None)
        if self.groups is not None:
            self.groups.ended(tid)

    def observe(self, consumer: Any, outcome: Any) -> None:
        """A task's attempt ended: run the ``on_finish`` hook once it is final."""
        if self.finish_hook is not None and consumer.state.terminal:
            self.finish_hook.fire(consumer.tid, str(consumer.state.value),
                                  outcome.exit_code, consumer.spec.name)

    def defer(self, manager: Any, cand: Any, reason: str) -> None:
        """Log ``task_deferred`` once per distinct reason, not once per poll."""
        seen = self._deferred.setdefault(cand.tid, set())
        if reason.startswith("concurrency:") or reason in seen:
            return
        if len(self._deferred) > 4096:
            self._deferred = {cand.tid: seen}  # bounded: at worst a reason is logged twice
        seen.add(reason)
        manager.batch.event("task_deferred", cand.tid, "deferred", manager_tid=manager.tid,
                            reason=reason, request_id=cand.spec.request_id,
                            name=cand.spec.name, parent_tid=cand.spec.parent_tid,
                            attempt=cand.request.attempt)

    def reject(self, manager: Any, cand: Any, reason: str) -> None:
        """Never fits here. Refuse it only if no manager seen within the history
        window could ever fit it; wait (``deferred``) while only absent ones could."""
        if self._project is None:
            me = Seen(tid=manager.tid, host=registry.HOST, live=True,
                      capacity=self.capacity, thresholds=self.thresholds)
            self._project = rejection.ProjectManagers(manager.broker, me,
                                                      window=self.history_window)
        request = self._request(cand)
        verdict = self._project.judge(request)
        if verdict.kind == "live":
            return  # leave it for a bigger manager
        if verdict.kind == "wait":
            self.defer(manager, cand, verdict.reason)
            # Look again now and then: an absent manager may age out of the window.
            self.retry_at = min(self.retry_at or float("inf"), time.monotonic() + WAIT_RECHECK)
            return
        manager.intake.forget(cand.message_id)
        self._requests.pop(cand.message_id, None)
        self._deferred.pop(cand.tid, None)
        rejection.reject(manager.broker, manager.batch, manager_tid=manager.tid,
                         message_id=cand.message_id, tid=cand.tid, reason=verdict.reason,
                         attempt=cand.request.attempt, request_id=cand.spec.request_id,
                         name=cand.spec.name, parent_tid=cand.spec.parent_tid,
                         details={"resources": cand.spec.resources.model_dump(),
                                  "here": reason, "window": self._project.span,
                                  "managers_checked": len(self._project.seen())})

    # -- registry ----------------------------------------------------------
    def capacity_record(self) -> dict[str, Any]:
        t = self.thresholds
        return {**self.capacity.to_record(), "gpu_source": self.gpu_reader.source,
                "vram_headroom_mb": t.vram_headroom_mb,
                "thresholds": {"max_cpu_percent": t.max_cpu_percent,
                               "min_free_memory_mb": t.min_free_memory_mb,
                               "max_gpu_util_percent": t.max_gpu_util_percent,
                               "vram_headroom_mb": t.vram_headroom_mb}}

    def load_record(self) -> dict[str, Any]:
        if self.finish_hook is not None and self.finish_hook.running:
            self.finish_hook.reap()  # every heartbeat: an idle manager still reaps hooks
        held = list(self.reservations.values())
        vram: dict[str, int] = {}
        exclusive: set[int] = set()
        for r in held:
            for index in r.gpu_ids:
                vram[str(index)] = vram.get(str(index), 0) + r.vram_mb
                if r.exclusive:
                    exclusive.add(index)
        return {
            "running": len(held),
            "reserved": {
                "cpus": round(sum(r.cpus for r in held), 3),
                "memory_mb": sum(r.memory_mb for r in held),
                "gpus": len({i for r in held for i in r.gpu_ids}),
                "vram_mb_by_gpu": vram,
                "exclusive_gpus": sorted(exclusive),
                "tasks_by_gpu": gpu_load.tasks_by_gpu(held),
            },
            "gpus_live": gpu_load.live_readings(self.capacity, self.telemetry),
        }


def _task_label(spec: Any) -> str:
    """What the task runs, for the metrics' bounded ``task`` label."""
    if spec.function:
        return str(spec.function)
    import os

    return os.path.basename(spec.command[0]) if spec.command else "command"


def make_policy(settings: Settings, options: dict[str, Any],
                broker: Broker | None = None, manager_tid: str | None = None) -> Policy:
    return Policy(settings, options, broker, manager_tid)

