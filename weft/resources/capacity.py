"""Capacity: the most a manager will ever hand out at once.

Capacity is detected from the host, then capped by the options the worker
was started with (``weft worker start --cpus/--memory/--gpus/--gpu-ids/
--max-concurrency``). Asking for more than the host has gives what the host
has; naming a GPU that does not exist is a usage error. Capacity is fixed
for a manager's life and is published in its registry record so clients can
refuse requests no manager seen within the history window could ever run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from weft.errors import InvalidSpec

if TYPE_CHECKING:
    from weft.resources.telemetry import HostReadings

__all__ = ["Capacity", "GpuSlot", "default_max_concurrency", "detect_capacity"]


@dataclass(frozen=True)
class GpuSlot:
    """A card this manager may assign, by its host device index."""

    index: int
    name: str
    memory_total_mb: int


@dataclass(frozen=True)
class Capacity:
    cpus: float
    memory_mb: int
    gpus: tuple[GpuSlot, ...]
    max_concurrency: int

    def to_record(self) -> dict[str, Any]:
        """JSON-able form for registry records."""
        return {
            "cpus": self.cpus,
            "memory_mb": self.memory_mb,
            "gpus": [
                {"index": g.index, "name": g.name, "memory_mb": g.memory_total_mb}
                for g in self.gpus
            ],
            "max_concurrency": self.max_concurrency,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Capacity:
        """Inverse of :meth:`to_record` (for reading other managers' records)."""
        return cls(
            cpus=float(record["cpus"]),
            memory_mb=int(record["memory_mb"]),
            gpus=tuple(
                GpuSlot(int(g["index"]), str(g["name"]), int(g["memory_mb"]))
                for g in record.get("gpus", ())
            ),
            max_concurrency=int(record["max_concurrency"]),
        )


def default_max_concurrency(cpu_count: int) -> int:
    """Children are often I/O-bound, so allow several per CPU, and at least 8."""
    return max(8, 4 * cpu_count)


def detect_capacity(
    readings: HostReadings,
    *,
    cpus: float | None = None,
    memory_mb: int | None = None,
    gpus: int | None = None,
    gpu_ids: Sequence[int] | None = None,
    max_concurrency: int | None = None,
) -> Capacity:
    """Host capacity capped by the worker-start options.

    ``gpu_ids`` selects cards by index (order kept, duplicates dropped);
    ``gpus`` then keeps the first N of the selection (all cards by default).
    """
    for flag, value in (("--cpus", cpus), ("--memory", memory_mb), ("--gpus", gpus)):
        if value is not None and value < 0:
            raise InvalidSpec(f"{flag} must not be negative (got {value})")
    if max_concurrency is not None and max_concurrency < 1:
        raise InvalidSpec(f"--max-concurrency must be at least 1 (got {max_concurrency})")
    detected_cpus = float(readings.cpu_count)
    slots = _select_gpus(readings, gpu_ids)
    if gpus is not None:
        slots = slots[:gpus]
    return Capacity(
        cpus=detected_cpus if cpus is None else min(float(cpus), detected_cpus),
        memory_mb=readings.memory_total_mb
        if memory_mb is None
        else min(int(memory_mb), readings.memory_total_mb),
        gpus=tuple(slots),
        max_concurrency=max_concurrency or default_max_concurrency(readings.cpu_count),
    )


def _select_gpus(readings: HostReadings, gpu_ids: Sequence[int] | None) -> list[GpuSlot]:
    by_index = {
        d.index: GpuSlot(d.index, d.name, d.memory_total_mb)
        for d in sorted(readings.gpus, key=lambda d: d.index)
    }
    if gpu_ids is None:
        return list(by_index.values())
    unknown = [i for i in gpu_ids if i not in by_index]
    if unknown:
        have = sorted(by_index) or "none"
        raise InvalidSpec(f"--gpu-ids: unknown GPU id(s) {unknown}; this host has {have}")
    return [by_index[i] for i in dict.fromkeys(gpu_ids)]
