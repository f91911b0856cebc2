"""A manager's row in ``weft.workers.registry``, rewritten on every beat.

The new row is written before the previous one is deleted, so a reader
always finds at least one row per live manager.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from weft import __version__
from weft.broker import opstats
from weft.names import WORKERS_REGISTRY
from weft.runtime.batch import dumps
from weft.runtime.containment import describe


class Heartbeat:
    def __init__(self, manager: Any, *, interval: float) -> None:
        from weft.resources.telemetry import pid_create_time

        self.manager = manager
        self.interval = interval
        self.host = socket.gethostname()
        self.started_at = time.time()
        self.create_time = pid_create_time(os.getpid())
        self._row: int | None = None
        self._launcher: tuple[int | None, float | None] = (None, None)
        self._next = 0.0
        # The launcher runs the same detection on the same host (containment.py).
        self.containment = describe()

    def due(self, now: float) -> bool:
        return now >= self._next

    def record(self, status: str, stop_reason: str | None = None) -> dict[str, Any]:
        m = self.manager
        return {
            "v": 1, "tid": m.tid, "role": "manager", "status": status, "host": self.host,
            "pid": os.getpid(), "pid_create_time": self.create_time,
            "started_at": self.started_at, "heartbeat_at": time.time(),
            "heartbeat_interval": self.interval, "queues": m.queues,
            "capabilities": m.policy.capacity_record(), "load": m.policy.load_record(),
            "version": __version__, "idle_timeout": m.idle_timeout, "name": m.name,
            "metrics_addr": m.options.get("metrics_addr"), "stop_reason": stop_reason,
            "launcher_pid": m.launcher.pid, "launcher_create_time": self._launcher_ct(),
            "paused": m.state.value == "paused", "containment": self.containment,
            "broker": opstats.STATS.snapshot(),  # for weft metrics (weft.broker.opstats)
        }

    def _launcher_ct(self) -> float | None:
        """The launcher's create time (cached per pid), so a reused pid is not taken for it."""
        from weft.resources.telemetry import pid_create_time

        pid = self.manager.launcher.pid
        if pid and self._launcher[0] != pid:
            self._launcher = (pid, pid_create_time(pid))
        return self._launcher[1] if pid else None

    def beat(self, *, status: str, stop_reason: str | None = None) -> None:
        broker = self.manager.broker
        row = broker.write(WORKERS_REGISTRY, dumps(self.record(status, stop_reason)))
        if self._row is not None:
            broker.delete(WORKERS_REGISTRY, [self._row])
        self._row = row
        self._next = time.monotonic() + self.interval
