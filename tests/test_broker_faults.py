"""Fault reports say what is wrong, and a manager notices its broker vanish (issue 11, item 7).

A healthy broker that cannot be written (immutable attribute, read-only
mount) is reported as read-only, fast, and never as corrupt; only a file
SQLite itself finds damaged is called corrupt, and no message suggests
removing a file. Tests run as root, where file modes do not bind, so they
use ``chattr +i`` and a read-only bind mount, and skip with the reason
where those are unavailable. Each test restores what it changed.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import pid_alive, wait_for

from weft.broker import faults, opened
from weft.settings import Settings

COMMANDS = (["status"], ["run", "--no-wait", "true"], ["queue", "peek", "keep"])


@pytest.fixture
def seeded(project):
    """An initialised project holding one queued message that must survive."""
    assert project.cli("init").returncode == 0
    assert project.cli("queue", "write", "keep", "precious").returncode == 0
    return project


def _one_line(proc, code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed: cannot make a file read-only for root")
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot set the immutable attribute here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextmanager
def read_only_mount(directory: Path) -> Iterator[None]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs root and mount(8)")
    bind = subprocess.run(["mount", "--bind", str(directory), str(directory)],
                          capture_output=True, text=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bind.stderr.strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(directory)],
                            capture_output=True, text=True)
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {ro.stderr.strip()}")
        yield
    finally:
        if subprocess.run(["umount", str(directory)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], check=True)


def _read_only_report(project, *needles: str) -> None:
    for args in COMMANDS:
        started = time.monotonic()
        line = _one_line(project.cli(*args), 3)
        assert time.monotonic() - started < 10, "a hopeless open must not wait out the lock timeout"
        assert "read-only" in line and all(n in line for n in needles), line
        assert "corrupt" not in line and "remove" not in line, line


def test_immutable_broker_file_is_read_only_not_corrupt(seeded):
    db = seeded.root / ".weft" / "broker.db"
    before = db.read_bytes()
    with immutable(db):
        _read_only_report(seeded, "immutable", "not damaged")
    assert db.read_bytes() == before
    assert seeded.rows("keep") == [{"_raw": "precious"}]


def test_immutable_weft_directory_is_read_only(seeded):
    with immutable(seeded.root / ".weft"):
        _read_only_report(seeded, "immutable", ".weft")
    assert seeded.rows("keep") == [{"_raw": "precious"}]


def test_read_only_mount_is_named(seeded):
    with read_only_mount(seeded.root / ".weft"):
        _read_only_report(seeded, "mounted read-only")
    assert seeded.cli("queue", "peek", "keep").stdout.strip() == "precious"


def test_damaged_pages_are_corrupt_and_the_file_is_kept(seeded):
    # Enough rows for several pages, then damage every page but the header's.
    with opened(seeded.root, Settings()) as broker:
        broker.write_many([("bulk", f"{i}" + "x" * 3000) for i in range(20)])
    db = seeded.root / ".weft" / "broker.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(db.read_bytes())
    for offset in range(4096 * 2, len(data), 4096):
        data[offset:offset + 64] = b"\xff" * 64
    db.write_bytes(bytes(data))
    line = _one_line(seeded.cli("queue", "peek", "keep"), 3)
    assert "corrupt" in line and "integrity check" in line and "remove" not in line
    assert db.read_bytes() == bytes(data)


def test_damage_words_from_sqlite_do_not_make_a_healthy_file_corrupt(seeded):
    db = seeded.root / ".weft" / "broker.db"
    # SQLite's words alone are a symptom: the file is checked before anyone calls it corrupt.
    assert faults.explain(db, "file is not a database", may_open=True) is None
    careful = faults.explain(db, "database disk image is malformed", may_open=False)
    assert careful is not None and "may be damaged" in careful.detail
    assert "remove" not in careful.detail
    locked = faults.explain(db, "database is locked", may_open=False)
    assert locked is not None and locked.kind == "locked"


@pytest.mark.parametrize("delete", ["weft_dir", "broker_file"])
def test_manager_whose_broker_is_deleted_stops_its_tasks_and_itself(project, manager, delete):
    tid = project.cli("run", "--no-wait", "--", "sleep", "300").stdout.strip()
    started = wait_for(lambda: [e for e in project.events(tid) if e["event"] == "task_started"],
                       what="task started")
    pid = started[0]["pid"]
    project.track(pid)
    record = project.registry()[manager.tid]
    launcher = record["launcher_pid"]
    weft_dir = project.root / ".weft"
    if delete == "weft_dir":
        shutil.rmtree(weft_dir)
    else:
        for name in ("broker.db", "broker.db-wal", "broker.db-shm"):
            (weft_dir / name).unlink(missing_ok=True)
    deleted_at = time.monotonic()
    # One heartbeat (1 s here) to notice, then TERM to the task at once.
    wait_for(lambda: not pid_alive(pid), timeout=15, what="the task stopped")
    wait_for(lambda: not pid_alive(manager.pid), timeout=15, what="the manager exited")
    wait_for(lambda: not pid_alive(launcher), timeout=15, what="the launcher exited")
    assert time.monotonic() - deleted_at < 15
    try:
        os.kill(manager.pid, signal.SIGKILL)  # belt and braces: never leave it behind
    except ProcessLookupError:
        pass
