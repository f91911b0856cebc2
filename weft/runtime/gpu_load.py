"""The per-card part of a manager's registry record: tasks on each card, and live readings.

``weft metrics`` runs in another process, often on another host, and cannot
ask a manager's NVML; it reads what each manager publishes in its registry
record on every heartbeat (``load.reserved.tasks_by_gpu`` and
``load.gpus_live``). The readings are the admission's cached host snapshot
(at most one NVML read per second), so publishing them costs no extra
driver call. A manager that offers no card reads nothing and publishes an
empty list: no driver, no gauges, no error.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any


def tasks_by_gpu(reservations: Iterable[Any]) -> dict[str, int]:
    """Running tasks assigned to each card (by index, as a string key)."""
    out: dict[str, int] = {}
    for r in reservations:
        for index in r.gpu_ids:
            out[str(index)] = out.get(str(index), 0) + 1
    return out


def live_readings(capacity: Any, telemetry: Any) -> list[dict[str, Any]]:
    """Memory in use and utilisation of each card the manager offers, as the
    driver last reported them (``utilization_pct`` None when it cannot say)."""
    offered = {g.index for g in capacity.gpus}
    if not offered:
        return []
    out = []
    for dev in telemetry.read(time.monotonic()).gpus:
        if dev.index in offered:
            out.append({"index": dev.index, "memory_used_mb": dev.memory_used_mb,
                        "utilization_pct": dev.utilization_pct})
    return out
