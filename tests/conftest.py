"""Test harness: a fresh project per test, real processes, nothing left behind.

Every test that touches processes gets its own project directory. At
teardown the harness kills every process group it can attribute to the
project (managers and their launchers from the registry, task processes
from the log, and any PID a test registered), even when the test failed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pids: set[int] = set()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WEFT_")}
        self.env.update({
            "WEFT_MANAGER_IDLE_TIMEOUT": "120",
            "WEFT_HEARTBEAT_INTERVAL": "1",
            "PYTHONPATH": str(ROOT) + os.pathsep + self.env.get("PYTHONPATH", ""),
        })

    def cli(self, *args: str, timeout: float = 60, input: str | None = None,
            env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``weft ARGS`` as a real process in the project directory."""
        return subprocess.run(
            [sys.executable, "-m", "weft.cli.main", *args],
            cwd=cwd or self.root, env={**self.env, **(env or {})}, input=input,
            capture_output=True, text=True, timeout=timeout,
        )

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "weft.cli.main", *args], cwd=self.root,
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True, **kwargs)
        self.pids.add(proc.pid)
        return proc

    def track(self, pid: int) -> None:
        self.pids.add(pid)

    # -- reading the broker directly (independent of weft's own readers) ---
    def rows(self, queue: str) -> list[dict[str, Any]]:
        db = self.root / ".weft" / "broker.db"
        if not db.exists():
            return []
        con = sqlite3.connect(db, timeout=10)
        try:
            try:
                cur = con.execute(
                    "SELECT body FROM messages WHERE queue = ? AND claimed = 0 ORDER BY ts",
                    (queue,))
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []  # the file exists but the broker has not set it up yet
                raise
            out = []
            for (body,) in cur.fetchall():
                try:
                    out.append(json.loads(body))
                except ValueError:
                    out.append({"_raw": body})
            return out
        finally:
            con.close()

    def events(self, tid: str | None = None) -> list[dict[str, Any]]:
        events = self.rows("weft.tasks.log")
        return [e for e in events if tid is None or e.get("tid") == tid]

    def registry(self) -> dict[str, dict[str, Any]]:
        newest: dict[str, dict[str, Any]] = {}
        for record in self.rows("weft.workers.registry"):
            newest[record["tid"]] = record
        return newest

    def reap(self) -> None:
        groups: set[int] = set(self.pids)
        try:
            for record in self.registry().values():
                for key in ("pid", "launcher_pid"):
                    if record.get(key):
                        groups.add(int(record[key]))
            for event in self.events():
                if event.get("event") == "task_started" and event.get("pid"):
                    groups.add(int(event["pid"]))
        except sqlite3.Error:
            pass
        me = {os.getpid(), os.getpgrp()}
        for pid in groups:
            if pid <= 1 or pid in me:
                continue  # a forged or odd record must not make the harness signal everything
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError, OSError):
                    pass


def wait_for(predicate: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail with a clear message."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(0.1, delay * 1.5)


def running_status(task: Any) -> dict[str, Any] | None:
    """A task's status while it runs with a known pid, else None (for ``wait_for``)."""
    try:
        info = task.status()
    except Exception:  # noqa: BLE001 - not visible yet
        return None
    return info if info["status"] == "running" and info.get("pid") else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    root = tmp_path / "proj"
    root.mkdir()
    proj = Project(root)
    for key in [k for k in os.environ if k.startswith("WEFT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WEFT_MANAGER_IDLE_TIMEOUT", "120")
    monkeypatch.setenv("WEFT_HEARTBEAT_INTERVAL", "1")
    # Managers started in-process (the `manager` fixture, WeftClient) must run
    # this checkout's code, not whichever weft is installed.
    monkeypatch.setenv("PYTHONPATH", proj.env["PYTHONPATH"])
    monkeypatch.chdir(root)
    try:
        yield proj
    finally:
        proj.reap()


@pytest.fixture
def client(project: Project) -> Iterator[Any]:
    from weft.client.client import WeftClient

    c = WeftClient(project.root)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def manager(project: Project, client: Any) -> Any:
    """A live manager for the project (started through the client)."""
    info = client.workers.start()
    project.track(info.pid)
    return info


def cli_json(proc: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a successful ``weft ... --json`` printed (fails the test with its stderr otherwise)."""
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def cli_manager(project: Project) -> dict[str, Any]:
    """A manager started by the CLI (``weft worker start``), tracked for reaping."""
    info = cli_json(project.cli("worker", "start", "--json"))
    if info.get("pid"):
        project.track(int(info["pid"]))
    return info
