"""Prometheus metrics for weft.

* :mod:`weft.metrics.registry` -- the families and the event → metric
  mapping, shared by both sources below; per-card gauges in
  :mod:`weft.metrics.gpus` and broker families in :mod:`weft.metrics.broker_stats`,
  both built from managers' registry records.
* :mod:`weft.metrics.server` -- a manager's live metrics, served over HTTP
  when it is started with ``--metrics-addr``.
* :mod:`weft.metrics.exposition` -- the same families computed once from
  the broker (``weft metrics``), for cron jobs and textfile collectors.

Only this package imports ``prometheus_client``; importing it is deferred
until metrics are asked for, so managers without ``--metrics-addr`` and the
rest of the CLI never pay for it.
"""

from __future__ import annotations
