"""Resources: what a host has, what is free, and whether a task may start.

The only package that talks to psutil and NVML. Layers, bottom up:

* :mod:`~weft.resources.gpu` -- GPU readers (NVML, or simulated cards);
* :mod:`~weft.resources.telemetry` -- cached host snapshots and per-process
  readings;
* :mod:`~weft.resources.capacity` -- a manager's fixed capacity;
* :mod:`~weft.resources.admission` -- the pure admit/defer/reject decision.

See ``docs/resources.md`` for the model and every knob.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Submodules load on first use: the CLI's liveness check needs telemetry only,
# and importing admission, capacity and the GPU readers costs start-up time.
_WHERE = {
    "Admit": "weft.resources.admission",
    "Capacity": "weft.resources.capacity",
    "Decision": "weft.resources.admission",
    "Defer": "weft.resources.admission",
    "GpuDevice": "weft.resources.gpu",
    "GpuReader": "weft.resources.gpu",
    "GpuSlot": "weft.resources.capacity",
    "HostReadings": "weft.resources.telemetry",
    "HostTelemetry": "weft.resources.telemetry",
    "NvmlReader": "weft.resources.gpu",
    "Reject": "weft.resources.admission",
    "Request": "weft.resources.admission",
    "Reservation": "weft.resources.admission",
    "SimulatedReader": "weft.resources.gpu",
    "Thresholds": "weft.resources.admission",
    "decide": "weft.resources.admission",
    "default_max_concurrency": "weft.resources.capacity",
    "detect_capacity": "weft.resources.capacity",
    "effective_priority": "weft.resources.admission",
    "make_gpu_reader": "weft.resources.gpu",
    "order": "weft.resources.admission",
    "pid_alive": "weft.resources.pids",
    "pid_create_time": "weft.resources.telemetry",
    "plan": "weft.resources.admission",
    "process_tree_pids": "weft.resources.telemetry",
    "process_tree_usage": "weft.resources.telemetry",
    "rejection_reason": "weft.resources.admission",
    "rss_mb": "weft.resources.telemetry",
    "this_host": "weft.resources.telemetry",
    "usable_cpu_count": "weft.resources.telemetry",
}

__all__ = [
    "Admit",
    "Capacity",
    "Decision",
    "Defer",
    "GpuDevice",
    "GpuReader",
    "GpuSlot",
    "HostReadings",
    "HostTelemetry",
    "NvmlReader",
    "Reject",
    "Request",
    "Reservation",
    "SimulatedReader",
    "Thresholds",
    "decide",
    "default_max_concurrency",
    "detect_capacity",
    "effective_priority",
    "make_gpu_reader",
    "order",
    "pid_alive",
    "pid_create_time",
    "plan",
    "process_tree_pids",
    "process_tree_usage",
    "rejection_reason",
    "rss_mb",
    "this_host",
    "usable_cpu_count",
]

if TYPE_CHECKING:
    from weft.resources.admission import (
        Admit,
        Decision,
        Defer,
        Reject,
        Request,
        Reservation,
        Thresholds,
        decide,
        effective_priority,
        order,
        plan,
        rejection_reason,
    )
    from weft.resources.capacity import Capacity, GpuSlot, default_max_concurrency, detect_capacity
    from weft.resources.gpu import (
        GpuDevice,
        GpuReader,
        NvmlReader,
        SimulatedReader,
        make_gpu_reader,
    )
    from weft.resources.pids import pid_alive
    from weft.resources.telemetry import (
        HostReadings,
        HostTelemetry,
        pid_create_time,
        process_tree_pids,
        process_tree_usage,
        rss_mb,
        this_host,
        usable_cpu_count,
    )


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'weft.resources' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
