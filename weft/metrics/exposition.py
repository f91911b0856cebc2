"""``weft metrics``: the managers' families, computed once from the broker.

For cron jobs and node_exporter's textfile collector, and for projects whose
managers serve no HTTP endpoint. The task families come from replaying
``weft.tasks.log`` through the same mapping a manager applies live
(:class:`~weft.metrics.registry.TaskMetrics`), so the numbers mean the same
thing; they cover every manager of the project at once, and they restart
from what is left when ``weft tidy`` drops old events. Queue depths are read
from the broker; the per-manager families from the registry, with CPU and
RSS read from the processes of live managers on this host.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import generate_latest

from weft.broker import Broker
from weft.codec import loads_object
from weft.metrics.registry import TaskMetrics, manager_families
from weft.names import SPAWN_REJECTED, SPAWN_REQUESTS, TASKS_LOG
from weft.runtime import registry

EXPOSED_QUEUES = (SPAWN_REQUESTS, SPAWN_REJECTED)


class _Families:
    """A collector that yields families built elsewhere."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


_loads = loads_object


def compute(broker: Broker) -> TaskMetrics:
    """Replay the log, count waiting requests, read queue depths and managers."""
    metrics = TaskMetrics()
    for body, _mid in broker.peek_all(TASKS_LOG):
        event = _loads(body)
        if event is not None:
            metrics.observe(event)
    now = time.time()
    for body, mid in broker.peek_all(SPAWN_REQUESTS):
        request = _loads(body) or {}
        spec = request.get("taskspec") if isinstance(request.get("taskspec"), dict) else {}
        group = str((spec or {}).get("group") or "default")
        waiting_since = max(mid / 1e9, float(request.get("not_before") or 0))
        age = max(0.0, now - waiting_since)
        metrics.oldest_queued[group] = max(metrics.oldest_queued.get(group, 0.0), age)
        tid = str((spec or {}).get("tid") or str(mid).zfill(19))
        if (request.get("attempt") or 1) == 1 and tid not in metrics.seen:
            metrics.seen.add(tid)
            metrics.counts["submitted"] += 1
    depths = {name: pending for name, pending, _total in broker.queue_stats()}
    for queue in EXPOSED_QUEUES:
        metrics.queue_depth[queue] = depths.get(queue, 0)
    metrics.registry.register(_Families(_managers(broker) + _storage(broker)))
    return metrics


def _storage(broker: Broker) -> list[Any]:
    """Bytes the broker's database takes, and the blob store's (files beside a
    SQLite broker, chunks inside PostgreSQL: then also in the database's size)."""
    from prometheus_client.core import GaugeMetricFamily

    from weft.broker.blobs import BlobError, blob_store
    from weft.broker.storage import database_bytes

    size = GaugeMetricFamily("weft_broker_database_bytes",
                             "Size of the broker's database (SQLite file and WAL, or the "
                             "PostgreSQL schema's tables).")
    size.add_metric([], float(database_bytes(broker)))
    blobs = GaugeMetricFamily("weft_blob_store_bytes", "Bytes held in the blob store.")
    try:
        blobs.add_metric([], float(blob_store(broker).usage()["bytes"]))
    except BlobError:
        return [size]  # a broker that does not know its project directory
    return [size, blobs]


def _managers(broker: Broker) -> list[Any]:
    from weft.resources.telemetry import process_usage

    now = time.time()
    live = [e.record for e in registry.read_all(broker).values()
            if registry.liveness(e.record, now) == "active"]
    if not live:  # still say which weft wrote this
        return manager_families([], {}, now)
    usage = {}
    for record in live:
        if record.get("host") == registry.HOST and record.get("pid"):
            reading = process_usage(int(record["pid"]))
            if reading is not None:
                usage[str(record["tid"])] = reading
    return manager_families(live, usage, now)


def render(broker: Broker) -> str:
    """The exposition text (Prometheus text format 0.0.4)."""
    return generate_latest(compute(broker).registry).decode("utf-8")
