"""Broker families, labelled ``manager``: what each manager's broker operations cost.

The numbers are counted in the manager's process (:mod:`weft.broker.opstats`)
and reach an exposition the same way as the per-card gauges: a manager's own
``/metrics`` reads them live, ``weft metrics`` reads the copy each live
manager publishes in its registry record (field ``broker``, at most one
heartbeat old). They start at zero when a manager starts.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily


def broker_families(managers: list[dict[str, Any]]) -> list[Any]:
    """Operation latency by kind, lock retries and the time they took, oversize refusals."""
    latency = HistogramMetricFamily(
        "weft_broker_operation_seconds",
        "Duration of a manager's broker operations, by kind (write, read, claim, move, "
        "settle, delete, id, poll, vacuum).", labels=["manager", "op"])
    retries = CounterMetricFamily("weft_broker_lock_retries",
                                  "Operations tried again because the database was locked.",
                                  labels=["manager"])
    waited = CounterMetricFamily("weft_broker_lock_wait_seconds",
                                 "Time spent in operations that found the database locked.",
                                 labels=["manager"])
    oversize = CounterMetricFamily("weft_broker_oversize_messages",
                                   "Messages refused for exceeding the broker's size limit.",
                                   labels=["manager"])
    for record in managers:
        stats = record.get("broker")
        if not isinstance(stats, dict):
            continue  # a manager of an older weft
        tid = str(record.get("tid"))
        bounds = [float(b) for b in stats.get("bounds") or ()]
        for op, data in sorted((stats.get("ops") or {}).items()):
            counts = list(data.get("n") or ())
            if len(counts) != len(bounds) + 1:
                continue
            latency.add_metric([tid, op], _cumulative(bounds, counts), float(data.get("s") or 0))
        retries.add_metric([tid], float(stats.get("lock_retries") or 0))
        waited.add_metric([tid], float(stats.get("lock_wait_s") or 0))
        oversize.add_metric([tid], float(stats.get("oversize") or 0))
    return [latency, retries, waited, oversize]


def _cumulative(bounds: list[float], counts: list[int]) -> list[tuple[str, float]]:
    out, running = [], 0
    for bound, n in zip([*bounds, float("inf")], counts, strict=True):
        running += int(n)
        out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
    return out
