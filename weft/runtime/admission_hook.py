"""The manager's admission seam: what fits now, what waits, what never will.

The manager asks a :class:`Policy` and does what it says; the policy keeps
the reservations of running children. This module only feeds and records:
the decision itself is the pure function in :mod:`weft.resources.admission`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from weft.settings import Settings


@dataclass(frozen=True)
class Decision:
    kind: str  # "admit" | "defer" | "reject"
    reason: str = ""
    gpu_ids: tuple[int, ...] = field(default=())


ADMIT = Decision("admit")


class Policy:
    """Concurrency-only admission (the resource-aware one extends it)."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        cpus = os.cpu_count() or 1
        self.max_concurrency = int(
            options.get("max_concurrency") or settings.max_concurrency or max(8, 4 * cpus)
        )
        self.reserved: dict[str, Any] = {}
        self._deferred: dict[str, str] = {}

    def has_room(self, running: int) -> bool:
        return running < self.max_concurrency

    def decide(self, cand: Any, now: float) -> Decision:
        return ADMIT

    def reserve(self, cand: Any, gpu_ids: tuple[int, ...]) -> None:
        self.reserved[cand.tid] = (cand.spec.resources, gpu_ids)
        self._deferred.pop(cand.tid, None)

    def release(self, tid: str) -> None:
        self.reserved.pop(tid, None)

    def observe(self, consumer: Any, outcome: Any) -> None:
        """Hook for metrics: a task ended."""

    def defer(self, manager: Any, cand: Any, reason: str) -> None:
        """Log ``task_deferred`` once per distinct reason, not once per poll."""
        if self._deferred.get(cand.tid) == reason:
            return
        self._deferred[cand.tid] = reason
        manager.batch.event("task_deferred", cand.tid, "deferred", manager_tid=manager.tid,
                            reason=reason, request_id=cand.spec.request_id,
                            name=cand.spec.name, parent_tid=cand.spec.parent_tid,
                            attempt=cand.request.attempt)

    def reject(self, manager: Any, cand: Any, reason: str) -> None:
        self.defer(manager, cand, reason)

    def capacity_record(self) -> dict[str, Any]:
        return {"cpus": os.cpu_count() or 1, "max_concurrency": self.max_concurrency}

    def load_record(self) -> dict[str, Any]:
        return {"running": len(self.reserved), "reserved": {}}


def make_policy(settings: Settings, options: dict[str, Any]) -> Policy:
    return Policy(settings, options)
