"""The launcher seam, manager side: one supervisor process and the link to it.

Everything that creates, signals or reaps a task process goes through
:class:`Launcher`. Replace it (or the supervisor behind it) to change how
tasks are isolated; the manager never calls ``fork`` or ``kill`` itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

from weft.runtime.frames import FrameSocket, PeerClosed

TASK_IDENTITY = ("WEFT_TASK_TID", "WEFT_PARENT_TID", "WEFT_REQUEST_ID", "WEFT_MANAGER_TID",
                 "WEFT_ATTEMPT")


class LauncherLost(Exception):
    """The supervisor process died; its tasks must be accounted for."""


class Launcher:
    def __init__(self, *, root: str, manager_tid: str) -> None:
        self.root = root
        self.manager_tid = manager_tid
        self.proc: subprocess.Popen[bytes] | None = None
        self.link: FrameSocket | None = None

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # Tasks inherit this environment; a manager started from inside a task
        # must not pass that task's identity on to its own children.
        env = {k: v for k, v in os.environ.items() if k not in TASK_IDENTITY}
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "weft.runtime.supervisor", "--fd", str(theirs.fileno()),
             "--root", self.root, "--manager-tid", self.manager_tid],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        self.link = FrameSocket(ours)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def fileno(self) -> int:
        assert self.link is not None
        return self.link.fileno()

    def send(self, op: dict[str, Any], *, flush: bool = True) -> None:
        if self.link is None:
            raise LauncherLost("launcher not running")
        try:
            self.link.send(op, flush=flush)
        except PeerClosed as exc:
            raise LauncherLost(str(exc)) from None

    def launch(self, op: dict[str, Any]) -> None:
        """Queued: the manager flushes the link once per step (:meth:`flush`)."""
        self.send(op, flush=False)

    def go(self, tid: str) -> None:
        """The task's start is on record: let its process run the target (queued too)."""
        self.send({"op": "go", "tid": tid}, flush=False)

    def signal(self, tid: str, sig: str, reason: str | None, grace: float | None = None) -> None:
        self.send({"op": "signal", "tid": tid, "sig": sig, "reason": reason, "grace": grace})

    def receive(self) -> list[dict[str, Any]]:
        if self.link is None:
            raise LauncherLost("launcher not running")
        try:
            frames = self.link.receive()
            self.link.flush()
        except PeerClosed as exc:
            raise LauncherLost(str(exc)) from None
        return frames

    @property
    def wants_write(self) -> bool:
        return bool(self.link and self.link.wants_write)

    def flush(self) -> None:
        if self.link is not None:
            try:
                self.link.flush()
            except PeerClosed as exc:
                raise LauncherLost(str(exc)) from None

    def shutdown(self, timeout: float = 10.0) -> None:
        """Ask the supervisor to exit once its tasks are gone, and wait for it."""
        if self.link is not None:
            try:
                self.link.send({"op": "shutdown"})
                self.link.flush_blocking(timeout=2.0)
            except PeerClosed:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.close()

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    @staticmethod
    def kill_groups(pgids: list[int]) -> None:
        """Kill task process groups whose supervisor is gone."""
        import signal

        for pgid in pgids:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def reap(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
