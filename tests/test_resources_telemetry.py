"""Telemetry against the real host: real processes, started and reaped here."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

import pytest

from weft.resources import (
    GpuDevice,
    HostTelemetry,
    SimulatedReader,
    pid_alive,
    pid_create_time,
    process_tree_pids,
    process_tree_usage,
    rss_mb,
    telemetry,
    this_host,
)

V = TypeVar("V")

# The grandchild allocates ~80 MB, touches it, then burns CPU.
GRANDCHILD = (
    "b = bytearray(80 * 2**20)\n"
    "for i in range(0, len(b), 4096): b[i] = 1\n"
    "import time\n"
    "end = time.time() + 60\n"
    "while time.time() < end: pass\n"
)
PARENT = (
    f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {GRANDCHILD!r}]).wait()\n"
)


def wait_for(probe: Callable[[], V], ok: Callable[[V], bool], timeout: float = 20.0) -> V:
    """Poll ``probe`` until ``ok`` holds or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"no evidence within {timeout}s; last value {value!r}")
        time.sleep(0.05)


@contextmanager
def process_group(args: list[str]) -> Iterator[subprocess.Popen]:
    """Start ``args`` in its own session; kill the whole group and reap on exit."""
    proc = subprocess.Popen(args, start_new_session=True)
    try:
        yield proc
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_process_tree_usage_counts_descendants():
    with process_group([sys.executable, "-c", PARENT]) as proc:
        rss, cpu = wait_for(
            lambda: process_tree_usage(proc.pid),
            lambda v: v is not None and v[0] >= 80 and v[1] >= 0.3,
        )
        own = rss_mb(proc.pid)
        assert own is not None and own < rss - 60  # most of it lives in the grandchild
        again = process_tree_usage(proc.pid)
        assert again is not None and again[1] >= cpu  # CPU time only grows
    assert process_tree_usage(proc.pid) is None
    assert rss_mb(proc.pid) is None


def test_process_tree_usage_survives_children_vanishing(monkeypatch):
    with process_group(["sleep", "30"]) as proc:
        vanished = telemetry.psutil.Process(proc.pid)
    me = os.getpid()
    monkeypatch.setattr(
        telemetry.psutil.Process, "children", lambda self, recursive=False: [vanished]
    )
    usage = process_tree_usage(me)
    assert usage is not None and usage[0] > 0


def test_process_tree_pids_names_the_whole_tree():
    sleeper = "import time; time.sleep(60)"
    parent = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {sleeper!r}]).wait()\n"
    with process_group([sys.executable, "-c", parent]) as proc:
        pids = wait_for(lambda: process_tree_pids(proc.pid), lambda v: len(v) == 2)
        assert proc.pid in pids
    assert process_tree_pids(proc.pid) == set()


def test_zombie_is_not_alive_and_has_no_usage():
    proc = subprocess.Popen(["true"])
    try:
        wait_for(lambda: pid_alive(proc.pid, None), lambda alive: not alive)
        assert process_tree_usage(proc.pid) is None
    finally:
        proc.wait(timeout=10)


def test_pid_alive_checks_create_time():
    me = os.getpid()
    started = pid_create_time(me)
    assert started is not None and started <= time.time()
    assert pid_alive(me, None)
    assert pid_alive(me, started)
    assert pid_alive(me, started + 0.005)
    assert not pid_alive(me, started + 1.0)  # same number, different process
    assert not pid_alive(me, started - 0.02)


def test_gone_and_invalid_pids():
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=10)
    for pid in (proc.pid, 0, -1):
        assert not pid_alive(pid, None)
        assert pid_create_time(pid) is None
        assert rss_mb(pid) is None
        assert process_tree_usage(pid) is None


def test_this_host():
    assert this_host() == socket.gethostname()


class CountingReader:
    source = "counting"

    def __init__(self) -> None:
        self.inner = SimulatedReader('[{"name": "Sim", "memory_mb": 8192}]')
        self.calls = 0

    def devices(self) -> list[GpuDevice]:
        self.calls += 1
        return self.inner.devices()


def test_readings_are_cached_for_ttl():
    reader = CountingReader()
    host = HostTelemetry(reader, ttl=1.0)
    first = host.read(100.0)
    assert host.read(100.0) is first
    assert host.read(100.99) is first
    assert reader.calls == 1
    second = host.read(101.0)
    assert second is not first and second.taken_at == 101.0 and reader.calls == 2
    assert host.read(50.0).taken_at == 50.0  # a clock that went backwards refreshes
    host.invalidate()
    assert host.read(50.0).taken_at == 50.0 and reader.calls == 4


def test_readings_describe_the_host():
    readings = HostTelemetry(CountingReader(), ttl=0).read(0.0)
    assert readings.cpu_count >= 1
    assert 0.0 <= readings.cpu_percent <= 100.0
    assert readings.memory_total_mb >= readings.memory_available_mb > 0
    assert [g.name for g in readings.gpus] == ["Sim"]


def test_proc_reading_agrees_with_psutil():
    """Records hold psutil's create times; the /proc reader must match them."""
    import psutil

    from weft.resources.pids import CREATE_TIME_TOLERANCE, read_proc_stat

    child = subprocess.Popen(["sleep", "30"])
    try:
        for pid in (os.getpid(), child.pid):
            state, started = read_proc_stat(pid)
            assert state in ("R", "S", "D")
            assert abs(started - psutil.Process(pid).create_time()) <= CREATE_TIME_TOLERANCE / 10
    finally:
        child.kill()
        child.wait(timeout=10)
    assert read_proc_stat(child.pid) == ("", 0.0)  # reaped: gone


def test_without_procfs_psutil_answers(tmp_path):
    from weft.resources import pids

    assert pids.read_proc_stat(os.getpid(), procfs=str(tmp_path)) is None
    assert pids._psutil_alive(os.getpid(), pid_create_time(os.getpid()))
    assert not pids._psutil_alive(os.getpid(), 1.0)
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=10)
    assert not pids._psutil_alive(gone.pid, None)
