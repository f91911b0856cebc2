"""Host and process readings: the live half of admission's inputs.

:class:`HostTelemetry` takes one snapshot of CPUs, memory and GPUs
(:class:`HostReadings`) and serves it from cache for ``ttl`` seconds, so a
dispatch loop that polls often stays cheap. The caller passes ``now``; the
cache never reads the clock itself.

The process helpers (:func:`process_tree_usage`, :func:`pid_create_time`, ...)
are what the manager uses to watch and identify its children. They never
raise for a process that is gone or vanishes mid-call: they answer
``None``/``False`` instead.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from weft.resources.gpu import GpuDevice, GpuReader

__all__ = [
    "HostReadings",
    "HostTelemetry",
    "pid_create_time",
    "process_tree_pids",
    "process_tree_usage",
    "process_usage",
    "rss_mb",
    "this_host",
    "usable_cpu_count",
]

_MIB = 1024 * 1024
_GONE = (psutil.NoSuchProcess, psutil.AccessDenied)


@dataclass(frozen=True)
class HostReadings:
    """One snapshot of the host, taken at ``taken_at`` (the caller's clock)."""

    cpu_count: int
    cpu_percent: float
    memory_total_mb: int
    memory_available_mb: int
    gpus: tuple[GpuDevice, ...]
    taken_at: float


def usable_cpu_count() -> int:
    """Logical CPUs this process may run on (affinity-aware where supported)."""
    logical = psutil.cpu_count(logical=True) or 1
    if hasattr(os, "sched_getaffinity"):
        return max(1, min(logical, len(os.sched_getaffinity(0))))
    return logical


class HostTelemetry:
    """Cached host snapshots; one fresh reading at most every ``ttl`` seconds."""

    def __init__(self, gpu_reader: GpuReader, ttl: float = 1.0) -> None:
        self.gpu_reader = gpu_reader
        self.ttl = ttl
        self._cached: HostReadings | None = None
        # psutil measures CPU% since the previous call; prime it so the first
        # real reading covers a meaningful interval instead of returning 0.0.
        psutil.cpu_percent(interval=None)

    def read(self, now: float) -> HostReadings:
        cached = self._cached
        if cached is not None and 0 <= now - cached.taken_at < self.ttl:
            return cached
        self._cached = self._take(now)
        return self._cached

    def invalidate(self) -> None:
        """Force the next :meth:`read` to take a fresh snapshot."""
        self._cached = None

    def _take(self, now: float) -> HostReadings:
        memory = psutil.virtual_memory()
        return HostReadings(
            cpu_count=usable_cpu_count(),
            cpu_percent=float(psutil.cpu_percent(interval=None)),
            memory_total_mb=int(memory.total) // _MIB,
            memory_available_mb=int(memory.available) // _MIB,
            gpus=tuple(self.gpu_reader.devices()),
            taken_at=now,
        )


def _proc(pid: int) -> psutil.Process | None:
    if pid <= 0:
        return None
    try:
        return psutil.Process(pid)
    except _GONE:
        return None


def process_tree_usage(pid: int) -> tuple[float, float] | None:
    """``(rss_mb, cpu_seconds)`` summed over ``pid`` and all its descendants.

    CPU seconds are user+system of every live process in the tree plus the
    time of descendants already reaped inside it, so short-lived helpers
    still count. Children that vanish mid-walk are skipped. ``None`` when
    ``pid`` itself is gone (or a zombie) or cannot be read.
    """
    root = _proc(pid)
    if root is None:
        return None
    try:
        with root.oneshot():
            if root.status() == psutil.STATUS_ZOMBIE:
                return None
            rss, cpu = _usage(root)
        children = root.children(recursive=True)
    except _GONE:
        return None
    for child in children:
        try:
            with child.oneshot():
                child_rss, child_cpu = _usage(child)
        except _GONE:
            continue
        rss += child_rss
        cpu += child_cpu
    return rss / _MIB, cpu


def process_tree_pids(pid: int) -> set[int]:
    """``pid`` and every live descendant; empty when ``pid`` is gone.

    Used to tell weft's own GPU users from foreign ones: NVML names the
    process that holds the memory, often a grandchild of the task process.
    """
    root = _proc(pid)
    if root is None:
        return set()
    try:
        return {pid, *(child.pid for child in root.children(recursive=True))}
    except _GONE:
        return set()


def _usage(proc: psutil.Process) -> tuple[int, float]:
    times = proc.cpu_times()
    cpu = times.user + times.system
    cpu += getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)
    return int(proc.memory_info().rss), float(cpu)


def rss_mb(pid: int) -> float | None:
    """Resident memory of one process in MB, ``None`` if it is gone."""
    proc = _proc(pid)
    if proc is None:
        return None
    try:
        return int(proc.memory_info().rss) / _MIB
    except _GONE:
        return None


def pid_create_time(pid: int) -> float | None:
    """When ``pid`` started (epoch seconds), ``None`` if it does not exist.

    Stored next to a pid so a later :func:`weft.resources.pids.pid_alive` can tell the original
    process from an unrelated one that reused the number.
    """
    proc = _proc(pid)
    if proc is None:
        return None
    try:
        return float(proc.create_time())
    except _GONE:
        return None


def this_host() -> str:
    """The host name recorded with pids, so pids are only judged locally."""
    return socket.gethostname()


def process_usage(pid: int) -> tuple[float, float] | None:
    """``(rss_bytes, cpu_seconds)`` of one process alone (not its children),
    ``None`` if it is gone: what a manager reports about itself in metrics."""
    proc = _proc(pid)
    if proc is None:
        return None
    try:
        with proc.oneshot():
            times = proc.cpu_times()
            return float(proc.memory_info().rss), float(times.user + times.system)
    except _GONE:
        return None
