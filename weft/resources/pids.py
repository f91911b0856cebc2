"""Is this the process we recorded? (``pid_alive``)

Every client asks it before trusting a manager's registry record, so it sits
on the start-up path of every short CLI command. On Linux it reads
``/proc/<pid>/stat`` itself, computing the start time exactly as psutil
does (start ticks / clock ticks + boot time), because importing psutil costs
``weft run`` about 8 % of its start-up; elsewhere, or when ``/proc`` cannot
be read, it asks psutil. Records store times from
:func:`weft.resources.telemetry.pid_create_time` (psutil), so the two must
agree: tests/test_resources_telemetry.py holds them to it.
"""

from __future__ import annotations

import functools
import os

CREATE_TIME_TOLERANCE = 0.01  # seconds; /proc start times are in clock ticks


def pid_alive(pid: int, create_time: float | None) -> bool:
    """True only if ``pid`` runs, is not a zombie, and (when given) started
    at ``create_time`` within 0.01 s."""
    if pid <= 0:
        return False
    seen = read_proc_stat(pid)
    if seen is None:
        return _psutil_alive(pid, create_time)
    state, started = seen
    if state in ("", "Z", "X"):  # gone, zombie, dead
        return False
    return create_time is None or abs(started - create_time) <= CREATE_TIME_TOLERANCE


def read_proc_stat(pid: int, procfs: str = "/proc") -> tuple[str, float] | None:
    """``(state, start time in epoch seconds)``; ``("", 0.0)`` when the
    process does not exist; ``None`` when ``procfs`` cannot answer."""
    try:
        with open(f"{procfs}/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return ("", 0.0) if os.path.isdir(procfs + "/self") else None
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(b")") + 2:].split()
    try:
        state, ticks = fields[0].decode(), int(fields[19])
        boot = _boot(procfs)
    except (IndexError, ValueError, OSError):
        return None
    return state, ticks / os.sysconf("SC_CLK_TCK") + boot


@functools.cache
def _boot(procfs: str) -> float:
    """The boot time (epoch seconds) from ``procfs``'s ``stat``; it never changes."""
    with open(f"{procfs}/stat", "rb") as fh:
        for line in fh:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise ValueError("no btime")


def _psutil_alive(pid: int, create_time: float | None) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            started = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        # It exists but cannot be inspected: only an unverified answer is possible.
        return create_time is None
    return create_time is None or abs(started - create_time) <= CREATE_TIME_TOLERANCE
