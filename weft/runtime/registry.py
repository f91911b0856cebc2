"""Reading ``weft.workers.registry``: who is alive, who is dead.

Managers rewrite their record on every heartbeat and delete the previous
row. Readers keep the newest row per tid. A record says ``active`` until the
manager writes ``stopped``; a manager killed with SIGKILL never does, so a
reader also checks the heartbeat lease and, on the same host, whether the
PID is still the same process (PIDs are reused: the create time must match).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from weft.broker import Broker
from weft.names import WORKERS_REGISTRY

# socket.gethostname() is uname's nodename; this spares every submit importing socket.
HOST = os.uname().nodename
LEASE_FACTOR = 3.0
LEASE_SLACK = 2.0


@dataclass(frozen=True)
class Entry:
    record: dict[str, Any]
    message_id: int

    @property
    def tid(self) -> str:
        return str(self.record["tid"])


def read_all(broker: Broker) -> dict[str, Entry]:
    """Newest registry row per manager tid."""
    newest: dict[str, Entry] = {}
    for body, mid in broker.peek_all(WORKERS_REGISTRY):
        try:
            record = json.loads(body)
            tid = str(record["tid"])
        except (ValueError, KeyError, TypeError):
            continue
        current = newest.get(tid)
        if current is None or mid > current.message_id:
            newest[tid] = Entry(record, mid)
    return newest


def liveness(record: dict[str, Any], now: float) -> str:
    """``active``, ``orphaned``, ``stopped`` or ``dead`` (alive on paper, gone in fact).

    ``orphaned`` is a dead manager whose launcher took over its record to
    finish the running tasks (:mod:`weft.runtime.orphan`): alive, but it
    claims nothing new, so it is not a manager clients can count on.
    """
    status = record.get("status")
    if status not in ("active", "orphaned"):
        return "stopped"
    interval = float(record.get("heartbeat_interval") or 5.0)
    if now - float(record.get("heartbeat_at") or 0) > interval * LEASE_FACTOR + LEASE_SLACK:
        from weft.runtime.outage import riding_out

        # A manager of this host riding out a broker outage cannot heartbeat, but lives.
        return str(status) if riding_out(record, HOST) else "dead"
    if record.get("host") == HOST:
        from weft.resources.pids import pid_alive

        if not pid_alive(int(record.get("pid") or 0), record.get("pid_create_time")):
            return "dead"
    return str(status)


def recoverable(record: dict[str, Any], now: float) -> bool:
    """May a peer take over this manager's claims now?

    Only when the manager is dead *and* nobody else is finishing its tasks:
    on this host its launcher must be gone too (a live launcher adopts the
    running tasks and settles the other claims itself); on another host the
    lease must have expired (an orphaned launcher keeps the lease fresh).
    """
    if liveness(record, now) != "dead":
        return False
    if record.get("host") != HOST or record.get("status") == "orphaned":
        return True
    launcher = int(record.get("launcher_pid") or 0)
    if not launcher:
        return True
    from weft.resources.pids import pid_alive

    return not pid_alive(launcher, record.get("launcher_create_time"))
