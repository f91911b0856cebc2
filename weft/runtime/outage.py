"""A manager's broker outage: when it began, when to try again, who may know.

A broker outage (a Postgres restart or failover, a network blip, a full or
read-only disk under SQLite) is not a reason for a manager to exit: its
children keep running and their outcomes are held (:mod:`.holding`) until
the broker returns. This module keeps the outage's bookkeeping:

* it is logged once when it begins and once when it ends, never per retry
  (the Postgres driver's own per-retry warnings are silenced by the broker
  layer);
* retries back off from :data:`FIRST_RETRY` to :data:`MAX_RETRY` seconds;
* while it lasts, a small state file (``outage-<tid>.json`` in the local
  spill directory) says "broker unreachable since ...", which ``weft worker
  status`` shows for managers on this host (the registry is the thing that
  cannot be written);
* after it, the manager waits one heartbeat lease before judging peers dead:
  their heartbeats went stale for the same reason its own did;
* ``--max-broker-outage`` optionally bounds it: past that the manager stops
  as if told STOP, spilling what it still holds.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from weft.errors import BrokerError, WeftError
from weft.pathsafety import open_private, private_dir
from weft.runtime.holding import HoldingBatch, spill_dir

log = logging.getLogger("weft.manager")

FIRST_RETRY = 0.5
MAX_RETRY = 5.0


class Outage:
    def __init__(self, manager_tid: str, *, root: Path, lease: float,
                 max_outage: float | None = None) -> None:
        self.manager_tid = manager_tid
        self.root = root
        self.lease = lease
        self.max_outage = max_outage
        self.since: float | None = None  # wall clock, for people
        self._began: float | None = None  # monotonic
        self._next_try = 0.0
        self._delay = FIRST_RETRY
        self._ended_at: float | None = None
        self.error = ""

    @property
    def active(self) -> bool:
        return self._began is not None

    def begin(self, exc: BaseException, *, held: int, now: float) -> None:
        self._began, self.since = now, time.time()
        self._delay = FIRST_RETRY
        self._next_try = now + self._delay
        self.error = (str(exc).splitlines() or [type(exc).__name__])[0]
        log.error("broker unreachable since %s: %s; tasks keep running, %d record(s) held, "
                  "retrying with back-off", _clock(self.since), self.error, held)
        _write_state(self.state_path(), {
            "manager_tid": self.manager_tid, "project": str(self.root), "pid": os.getpid(),
            "host": socket.gethostname(), "since": self.since, "error": self.error})

    def due(self, now: float) -> bool:
        return now >= self._next_try

    def wait_time(self, now: float) -> float:
        return max(0.0, self._next_try - now)

    def failed(self, now: float) -> None:
        self._delay = min(MAX_RETRY, self._delay * 2)
        self._next_try = now + self._delay

    def try_end(self, now: float, holding: HoldingBatch, write: Callable[[], None]) -> bool:
        """Retry the broker by ``write`` (the held records first); it ended if that worked."""
        held = holding.held
        try:
            write()
        except BrokerError:
            holding.bound()
            self.failed(now)
            return False
        self.end(time.monotonic(), flushed=held)
        return True

    def end(self, now: float, *, flushed: int) -> None:
        began = self._began if self._began is not None else now
        log.warning("broker reachable again after %.1fs; wrote %d held record(s)",
                    now - began, flushed)
        self._began = self.since = None
        self._ended_at = now
        self.state_path().unlink(missing_ok=True)

    def expired(self, now: float) -> bool:
        return (self.max_outage is not None and self._began is not None
                and now - self._began > self.max_outage)

    def may_judge_peers(self, now: float) -> bool:
        """Not during an outage, nor within a lease after one (peers are catching up)."""
        if self.active:
            return False
        return self._ended_at is None or now - self._ended_at > self.lease

    def state_path(self) -> Path:
        return spill_dir() / f"outage-{self.manager_tid}.json"

    def close(self) -> None:
        self.state_path().unlink(missing_ok=True)


def state_of(manager_tid: str) -> dict[str, Any] | None:
    """The outage state file of a manager on this host whose process still lives."""
    try:
        state = json.loads((spill_dir() / f"outage-{manager_tid}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not _alive(int(state.get("pid") or 0)):
        return None
    return state


def sweep_stale() -> int:
    """Remove outage state files of managers that died during their outage (SIGKILL
    leaves them behind; they are ignored anyway, since their pid is gone)."""
    removed = 0
    for path in spill_dir().glob("outage-*.json"):
        if state_of(path.stem.removeprefix("outage-")) is None:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def riding_out(record: dict[str, Any], host: str) -> bool:
    """Is this registry record's manager (on this host) alive and waiting out an outage?"""
    if record.get("host") != host or not record.get("tid"):
        return False
    state = state_of(str(record["tid"]))
    return state is not None and state.get("pid") == record.get("pid")


def describe(state: dict[str, Any]) -> str:
    return f"broker unreachable since {_clock(float(state.get('since') or 0))}" + \
        (f" ({state['error']})" if state.get("error") else "")


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _alive(pid: int) -> bool:
    from weft.resources.pids import pid_alive

    return pid > 0 and pid_alive(pid, None)


def _write_state(path: Path, state: dict[str, Any]) -> None:
    try:
        path.parent.parent.mkdir(parents=True, exist_ok=True)
        private_dir(path.parent)
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(state))
        tmp.replace(path)
    except (OSError, WeftError) as exc:  # the local disk too: the log line still says it
        log.warning("cannot record the outage in %s: %s", path, exc)
