"""A manager's live metrics, served over HTTP (``--metrics-addr``).

The manager owns one :class:`ManagerMetrics`. It listens to every event the
manager writes (so counting costs a few increments per event, and never a
broker query per task), samples the spawn queue depth and the manager's
capacity on each heartbeat, and reads the manager's own CPU and RSS when
scraped. prometheus_client serves ``/metrics`` from a daemon thread; the
main loop never waits on a scrape.

Off by default. ``PORT`` or ``:PORT`` binds loopback; another interface
must be named explicitly (``0.0.0.0:9464``). Port 0 picks a free port; the
address actually bound is written into the manager's registry record
(``metrics_addr``) so users and tests can find it.
"""

from __future__ import annotations

import os
from typing import Any

from weft.errors import UsageError

LOOPBACK = "127.0.0.1"


def parse_addr(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``[V6]:PORT`` → ``(host, port)``."""
    raw = str(text).strip()
    host, port_text = LOOPBACK, raw
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0 or raw[end + 1:end + 2] != ":":
            raise UsageError(f"--metrics-addr {text!r}: expected [IPV6]:PORT")
        host, port_text = raw[1:end], raw[end + 2:]
    elif ":" in raw:
        host, _, port_text = raw.rpartition(":")
        host = host or LOOPBACK
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535 or not host:
        raise UsageError(f"--metrics-addr {text!r}: expected HOST:PORT or PORT "
                         "(port 0-65535; 0 picks a free port)")
    return host, int(port_text)


def format_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ManagerMetrics:
    """Metrics of one manager: counted from its events, served over HTTP."""

    def __init__(self, manager: Any, addr: str) -> None:
        from prometheus_client import start_http_server

        from weft.metrics.registry import TaskMetrics

        self.manager = manager
        self.metrics = TaskMetrics()
        self._capacity: dict[str, Any] = {}
        self.metrics.registry.register(_Live(self))
        self.sample()
        host, port = parse_addr(addr)
        try:
            self.server, self.thread = start_http_server(port, host, registry=self.metrics.registry)
        except OSError as exc:
            raise UsageError(f"cannot serve metrics on {format_addr(host, port)}: "
                             f"{exc.strerror or exc}") from None
        self.address = format_addr(host, int(self.server.server_port))
        manager.batch.listeners.append(self.metrics.observe)

    def sample(self) -> None:
        """On heartbeat: one count of each exposed queue, the manager's capacity."""
        from weft.metrics.exposition import EXPOSED_QUEUES

        m = self.manager
        for queue in EXPOSED_QUEUES:
            self.metrics.queue_depth[queue] = m.broker.count(queue)
        self._capacity = dict(m.policy.capacity_record())

    def families(self) -> list[Any]:
        from weft.metrics.registry import manager_families
        from weft.resources.telemetry import process_usage

        tid = self.manager.tid
        reading = process_usage(os.getpid())
        usage = {tid: reading} if reading is not None else {}
        paused = getattr(self.manager.state, "value", None) == "paused"
        load = self.manager.policy.load_record()
        return manager_families([{"tid": tid, "capabilities": self._capacity, "paused": paused,
                                  "load": load}], usage)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class _Live:
    """Collector for the families read at scrape time (capacity, CPU, RSS)."""

    def __init__(self, owner: ManagerMetrics) -> None:
        self.owner = owner

    def collect(self) -> list[Any]:
        return self.owner.families()


def start(manager: Any) -> ManagerMetrics | None:
    """Start serving when the manager was given ``metrics_addr``; else None.

    Rewrites ``manager.options["metrics_addr"]`` to the address bound, which
    the heartbeat publishes in the registry record.
    """
    addr = manager.options.get("metrics_addr")
    if not addr:
        return None
    served = ManagerMetrics(manager, str(addr))
    manager.options["metrics_addr"] = served.address
    return served
