"""Per-card gauges, labelled ``manager`` and ``gpu``, from managers' registry records.

Both sources build them the same way: ``weft metrics`` from each live
manager's record, a manager's own ``/metrics`` from the record it would
publish now. A record carries the cards the manager offers
(``capabilities.gpus``), what its running tasks hold on each
(``load.reserved``: VRAM, tasks, whole cards) and the driver's last readings
(``load.gpus_live``: memory in use, utilisation; :mod:`weft.runtime.gpu_load`).
A manager without cards yields no series; a card whose driver cannot report
utilisation has no utilisation series.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

MIB = 1024 * 1024
LABELS = ["manager", "gpu"]


def gpu_families(managers: list[dict[str, Any]]) -> list[Any]:
    """What each card offers and what running tasks hold on it, then its live readings."""
    total = _gauge("weft_gpu_memory_bytes", "VRAM of a GPU a manager offers.")
    reserved = _gauge("weft_gpu_reserved_vram_bytes", "VRAM reserved on a GPU by running tasks.")
    tasks = _gauge("weft_gpu_tasks", "Running tasks assigned to a GPU.")
    whole = _gauge("weft_gpu_exclusive", "1 while a task holds the whole GPU.")
    for record in managers:
        held = (record.get("load") or {}).get("reserved") or {}
        by_gpu = held.get("vram_mb_by_gpu") or {}
        on_gpu = held.get("tasks_by_gpu") or {}
        exclusive = set(held.get("exclusive_gpus") or ())
        for key, dev in _cards(record, (record.get("capabilities") or {}).get("gpus")):
            index = dev["index"]
            total.add_metric(key, float(dev.get("memory_mb") or 0) * MIB)
            reserved.add_metric(key, float(by_gpu.get(str(index), 0)) * MIB)
            tasks.add_metric(key, float(on_gpu.get(str(index), 0)))
            whole.add_metric(key, 1.0 if index in exclusive else 0.0)
    return [total, reserved, tasks, whole, *gpu_live_families(managers)]


def gpu_live_families(managers: list[dict[str, Any]]) -> list[Any]:
    """The driver's readings each manager published (NVML, or simulated cards):
    VRAM in use by any process, and utilisation when the driver gives it."""
    used = _gauge("weft_gpu_memory_used_bytes", "VRAM in use on a GPU (any process).")
    util = _gauge("weft_gpu_utilization_ratio", "GPU utilisation, 0 to 1.")
    for record in managers:
        for key, dev in _cards(record, (record.get("load") or {}).get("gpus_live")):
            if dev.get("memory_used_mb") is not None:
                used.add_metric(key, float(dev["memory_used_mb"]) * MIB)
            if dev.get("utilization_pct") is not None:
                util.add_metric(key, float(dev["utilization_pct"]) / 100.0)
    return [used, util]


def _gauge(name: str, documentation: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=LABELS)


def _cards(record: dict[str, Any], devices: Any) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """Each card a record lists in ``devices`` with its labels (manager TID, card
    index); anything that is not a list of cards with an index is passed over."""
    tid = str(record.get("tid"))
    for dev in devices if isinstance(devices, list) else ():
        if isinstance(dev, dict) and dev.get("index") is not None:
            yield [tid, str(dev["index"])], dev
