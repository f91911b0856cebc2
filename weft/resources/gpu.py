"""GPU discovery: what cards this host has and how busy they are right now.

Two readers share one contract, :class:`GpuReader`:

* :class:`NvmlReader` asks the NVIDIA driver through ``pynvml``
  (nvidia-ml-py). A host with no library, no driver or no device has zero
  GPUs; that is logged once as a warning and is never an error. Init is
  retried at most every ``retry_interval`` seconds so a driver that loads
  late, or a card that appears later, is picked up without a restart.
* :class:`SimulatedReader` serves fake cards described by the
  ``WEFT_GPU_SIMULATE`` JSON list. It is a testing and demo aid for machines
  without a GPU; admission treats its cards exactly like real ones.

Readers only observe. What weft itself has promised to its running tasks is
accounted by admission (reservations), not here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from weft.errors import InvalidSpec

__all__ = [
    "GpuDevice",
    "GpuReader",
    "NvmlReader",
    "SimulatedReader",
    "make_gpu_reader",
]

log = logging.getLogger("weft.resources")

_MIB = 1024 * 1024
_SIM_KEYS = {"name", "memory_mb", "uuid", "used_mb", "utilization_pct"}


@dataclass(frozen=True)
class GpuDevice:
    """One card as seen at one moment.

    ``processes`` holds ``(pid, used_mb)`` for every process the driver says
    is using the card, sorted by pid. ``utilization_pct`` is ``None`` when the
    driver cannot report it.
    """

    index: int
    uuid: str
    name: str
    memory_total_mb: int
    memory_used_mb: int
    memory_free_mb: int
    utilization_pct: float | None
    processes: tuple[tuple[int, int], ...] = ()


class GpuReader(Protocol):
    """Anything that can list the host's GPUs. ``source`` names the backend."""

    source: str

    def devices(self) -> list[GpuDevice]: ...


class NvmlReader:
    """Reads real cards through NVML; never raises, degrades to no GPUs.

    ``clock`` is injectable so tests can step past the retry interval.
    """

    source = "nvml"

    def __init__(
        self, *, retry_interval: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._retry_interval = retry_interval
        self._clock = clock
        self._nvml: Any = None  # the pynvml module once init succeeded
        self._next_attempt: float | None = None
        self._warned: set[str] = set()

    def devices(self) -> list[GpuDevice]:
        nvml = self._ready()
        if nvml is None:
            return []
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            self._give_up(f"NVML stopped answering ({exc})", shutdown=True)
            return []
        return [dev for i in range(count) if (dev := _read_device(nvml, i)) is not None]

    def _ready(self) -> Any:
        """The pynvml module if NVML is initialised, else try (rate-limited)."""
        if self._nvml is not None:
            return self._nvml
        now = self._clock()
        if self._next_attempt is not None and now < self._next_attempt:
            return None
        self._next_attempt = now + self._retry_interval
        try:
            import pynvml
        except ImportError:
            self._warn("nvidia-ml-py (pynvml) is not installed")
            return None
        try:
            pynvml.nvmlInit()
        except (pynvml.NVMLError, OSError) as exc:
            self._warn(_describe_init_error(pynvml, exc))
            return None
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        except pynvml.NVMLError as exc:
            count, why = 0, f"NVML could not count devices ({exc})"
        else:
            why = "NVML reports no devices"
        if count == 0:
            # NVML enumerates cards at init: shut down so a retry re-enumerates.
            _quiet_shutdown(pynvml)
            self._warn(why)
            return None
        self._nvml = pynvml
        if self._warned:
            log.info("NVML ready after earlier failure: %d GPU(s)", count)
            self._warned.clear()
        return pynvml

    def _give_up(self, why: str, *, shutdown: bool) -> None:
        if shutdown and self._nvml is not None:
            _quiet_shutdown(self._nvml)
        self._nvml = None
        self._next_attempt = self._clock() + self._retry_interval
        self._warn(why)

    def _warn(self, why: str) -> None:
        """One warning per distinct cause, not one per dispatch poll."""
        if why in self._warned:
            return
        self._warned.add(why)
        log.warning(
            "no GPUs: %s; scheduling with zero GPUs (retrying every %gs)",
            why,
            self._retry_interval,
        )


def _describe_init_error(nvml: Any, exc: BaseException) -> str:
    code = getattr(exc, "value", None)
    if code == getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", object()):
        return "NVIDIA driver library (libnvidia-ml) not found"
    if code == getattr(nvml, "NVML_ERROR_DRIVER_NOT_LOADED", object()):
        return "NVIDIA driver not loaded"
    return f"NVML init failed ({exc})"


def _quiet_shutdown(nvml: Any) -> None:
    with contextlib.suppress(nvml.NVMLError, OSError):
        nvml.nvmlShutdown()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _read_device(nvml: Any, index: int) -> GpuDevice | None:
    """One card, or None if the card itself cannot be read.

    A card whose memory cannot be read is skipped (it cannot be budgeted);
    other failing fields degrade to a placeholder or ``None``.
    """
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        mem = nvml.nvmlDeviceGetMemoryInfo(handle)
    except nvml.NVMLError as exc:
        log.debug("skipping GPU %d: %s", index, exc)
        return None
    uuid = _field(nvml, nvml.nvmlDeviceGetUUID, handle)
    name = _field(nvml, nvml.nvmlDeviceGetName, handle)
    rates = _field(nvml, nvml.nvmlDeviceGetUtilizationRates, handle)
    return GpuDevice(
        index=index,
        uuid=_text(uuid) if uuid is not None else f"GPU-unknown-{index}",
        name=_text(name) if name is not None else "unknown NVIDIA GPU",
        memory_total_mb=int(mem.total) // _MIB,
        memory_used_mb=int(mem.used) // _MIB,
        memory_free_mb=int(mem.free) // _MIB,
        utilization_pct=float(rates.gpu) if rates is not None else None,
        processes=_processes(nvml, handle),
    )


def _field(nvml: Any, getter: Callable[[Any], Any], handle: Any) -> Any:
    try:
        return getter(handle)
    except nvml.NVMLError:
        return None


def _processes(nvml: Any, handle: Any) -> tuple[tuple[int, int], ...]:
    """Compute and graphics users merged by pid.

    A process in both lists reports the same per-process total in each, so
    the larger value is kept rather than the sum. Unknown usage counts as 0.
    """
    merged: dict[int, int] = {}
    for getter in (
        nvml.nvmlDeviceGetComputeRunningProcesses,
        nvml.nvmlDeviceGetGraphicsRunningProcesses,
    ):
        for proc in _field(nvml, getter, handle) or ():
            used = getattr(proc, "usedGpuMemory", None)
            used_mb = int(used) // _MIB if used is not None else 0
            pid = int(proc.pid)
            merged[pid] = max(merged.get(pid, 0), used_mb)
    return tuple(sorted(merged.items()))


class SimulatedReader:
    """Fake cards from ``WEFT_GPU_SIMULATE`` (a testing and demo aid).

    The value is a JSON list of objects with ``name`` and ``memory_mb`` and
    optionally ``uuid``, ``used_mb`` (memory used by something outside weft,
    default 0) and ``utilization_pct`` (default 0). Cards are indexed in list
    order and never list processes.
    """

    source = "simulated"

    def __init__(self, spec_json: str) -> None:
        self._devices = tuple(_parse_simulated(spec_json))

    def devices(self) -> list[GpuDevice]:
        return list(self._devices)


def _bad(why: str) -> InvalidSpec:
    return InvalidSpec(f"invalid WEFT_GPU_SIMULATE: {why}")


def _parse_simulated(spec_json: str) -> list[GpuDevice]:
    try:
        raw = json.loads(spec_json)
    except ValueError as exc:
        raise _bad(f"not JSON ({exc.args[0] if exc.args else exc})") from None
    if not isinstance(raw, list):
        raise _bad('expected a JSON list like [{"name": "Sim GPU", "memory_mb": 8192}]')
    return [_simulated_device(i, item) for i, item in enumerate(raw)]


def _number(item: dict[str, Any], key: str, where: str, *, integral: bool) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    numeric = isinstance(value, int) or (not integral and isinstance(value, float))
    if isinstance(value, bool) or not numeric or value < 0:
        kind = "a non-negative integer" if integral else "a non-negative number"
        raise _bad(f"{where}.{key} must be {kind}")
    return float(value)


def _simulated_device(index: int, item: Any) -> GpuDevice:
    where = f"device {index}"
    if not isinstance(item, dict):
        raise _bad(f"{where} must be an object")
    unknown = sorted(set(item) - _SIM_KEYS)
    if unknown:
        raise _bad(f"{where} has unknown key(s) {unknown}; allowed: {sorted(_SIM_KEYS)}")
    total = int(_number(item, "memory_mb", where, integral=True) or 0)
    if not total:
        raise _bad(f"{where}.memory_mb is required and must be a positive integer")
    used = int(_number(item, "used_mb", where, integral=True) or 0)
    if used > total:
        raise _bad(f"{where}.used_mb ({used}) exceeds memory_mb ({total})")
    util = float(_number(item, "utilization_pct", where, integral=False) or 0.0)
    if util > 100:
        raise _bad(f"{where}.utilization_pct must be at most 100")
    name = item.get("name", f"Simulated GPU {index}")
    uuid = item.get("uuid", f"GPU-SIM-{index:04d}")
    if not isinstance(name, str) or not isinstance(uuid, str):
        raise _bad(f"{where}.name and .uuid must be strings")
    return GpuDevice(
        index=index,
        uuid=uuid,
        name=name,
        memory_total_mb=total,
        memory_used_mb=used,
        memory_free_mb=total - used,
        utilization_pct=util,
        processes=(),
    )


def make_gpu_reader(simulate: str | None) -> GpuReader:
    """The simulated reader when ``simulate`` holds a spec, else NVML."""
    if simulate is not None and simulate.strip():
        return SimulatedReader(simulate)
    return NvmlReader()
