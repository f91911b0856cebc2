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
from weft.resources.telemetry import (
    HostReadings,
    HostTelemetry,
    pid_alive,
    pid_create_time,
    process_tree_pids,
    process_tree_usage,
    rss_mb,
    this_host,
    usable_cpu_count,
)

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
