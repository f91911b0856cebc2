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

Metrics name tasks, managers and hosts, so they are nobody else's
business: an address that is not loopback is served only after a warning
in the manager's log (and from ``weft worker start``), and
``--metrics-auth-file`` puts the endpoint behind a bearer token or a
basic-auth pair (:mod:`weft.metrics.auth`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
from typing import Any

from weft.errors import UsageError

LOOPBACK = "127.0.0.1"
log = logging.getLogger("weft.metrics")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_warning(addr: str, auth_file: str | None) -> str | None:
    """The warning to give for serving metrics on ``addr``, or None when it stays on this host."""
    host, port = parse_addr(addr)
    if is_loopback(host):
        return None
    guard = ("behind the token in --metrics-auth-file" if auth_file else
             "without authentication (see --metrics-auth-file)")
    return (f"metrics on {format_addr(host, port)} are reachable from other hosts, {guard}, "
            "over plain HTTP")


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

    def __init__(self, manager: Any, addr: str, auth_file: str | None = None) -> None:
        from prometheus_client import make_wsgi_app

        from weft.metrics.auth import guarded, read_auth_file
        from weft.metrics.registry import TaskMetrics

        self.manager = manager
        self.metrics = TaskMetrics()
        self._capacity: dict[str, Any] = {}
        self._load: dict[str, Any] = {}
        self.metrics.registry.register(_Live(self))
        self.sample()
        host, port = parse_addr(addr)
        app = make_wsgi_app(self.metrics.registry)
        if auth_file:
            app = guarded(app, read_auth_file(auth_file))
        warning = exposure_warning(addr, auth_file)
        if warning:
            log.warning("%s", warning)
        try:
            self.server, self.thread = _serve(host, port, app)
        except OSError as exc:
            raise UsageError(f"cannot serve metrics on {format_addr(host, port)}: "
                             f"{exc.strerror or exc}") from None
        self.address = format_addr(host, int(self.server.server_port))
        manager.batch.listeners.append(self.metrics.observe)

    def sample(self) -> None:
        """On heartbeat: one count of each exposed queue, the manager's capacity and load."""
        from weft.metrics.exposition import EXPOSED_QUEUES

        m = self.manager
        for queue in EXPOSED_QUEUES:
            self.metrics.queue_depth[queue] = m.broker.count(queue)
        self._capacity = dict(m.policy.capacity_record())
        # with the GPU readings, taken on the main loop (the reader is not for two threads)
        self._load = m.policy.load_record()

    def families(self) -> list[Any]:
        from weft.metrics.registry import manager_families
        from weft.resources.telemetry import process_usage

        tid = self.manager.tid
        reading = process_usage(os.getpid())
        usage = {tid: reading} if reading is not None else {}
        paused = getattr(self.manager.state, "value", None) == "paused"
        from weft.broker.opstats import STATS

        return manager_families([{"tid": tid, "capabilities": self._capacity, "paused": paused,
                                  "load": self._load, "broker": STATS.snapshot()}], usage)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _serve(host: str, port: int, app: Any) -> tuple[Any, threading.Thread]:
    """A threaded WSGI server for ``app`` on a daemon thread (prometheus_client's own
    ``start_http_server`` takes no authentication hook)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    httpd = make_server(host, port, app, Server, handler_class=Quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="weft-metrics", daemon=True)
    thread.start()
    return httpd, thread


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
    served = ManagerMetrics(manager, str(addr), manager.options.get("metrics_auth_file"))
    manager.options["metrics_addr"] = served.address
    return served
