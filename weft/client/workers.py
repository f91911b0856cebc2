"""Starting, stopping and listing managers (``client.workers``).

A manager is a task: its TID works with ``client.task(tid)`` for PING,
STATUS, PAUSE and RESUME. Liveness is read from ``weft.workers.registry``
(newest record per manager, checked against the heartbeat lease and, on
this host, the PID).
"""

from __future__ import annotations

import builtins
import fcntl
import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from weft.errors import ManagerUnavailable, NotFound, UsageError, WaitTimeout
from weft.names import WORKERS_REGISTRY
from weft.pathsafety import NOFOLLOW, open_private, private_dir
from weft.runtime import registry

if TYPE_CHECKING:
    from collections.abc import Iterator

    from weft.client.client import WeftClient


@dataclass(frozen=True)
class WorkerInfo:
    """A registry record plus what a reader concluded about it."""

    tid: str
    status: str  # active | stopped | dead
    pid: int
    host: str
    record: dict[str, Any]
    paused: bool = False  # live but not claiming (weft task pause MANAGER)

    @property
    def shown_status(self) -> str:
        """What to show a person: ``paused`` for a live paused manager."""
        return "paused" if self.paused and self.status == "active" else self.status

    def to_dict(self) -> dict[str, Any]:
        return {**self.record, "status": self.status, "recorded_status": self.record.get("status"),
                "paused": self.paused, "shown_status": self.shown_status}


class Workers:
    def __init__(self, client: WeftClient) -> None:
        self.client = client
        self._live_until = 0.0

    # -- reading ------------------------------------------------------------
    def list(self, *, all: bool = False) -> list[WorkerInfo]:  # noqa: A002 - mirrors --all
        """Live managers, oldest first; ``all=True`` adds stopped and dead ones."""
        now = time.time()
        infos = []
        for entry in registry.read_all(self.client.broker).values():
            rec = entry.record
            state = registry.liveness(rec, now)
            if rec.get("host") == registry.HOST and (held := _outage().state_of(entry.tid)):
                rec = {**rec, "broker_outage": {**held, "text": _outage().describe(held)}}
            if all or state == "active":
                from weft.client.paused import manager_paused

                paused = state == "active" and manager_paused(self.client.broker, entry.tid, rec)
                infos.append(WorkerInfo(entry.tid, state, int(rec.get("pid") or 0),
                                        str(rec.get("host")), rec, paused))
        return sorted(infos, key=lambda w: w.tid)

    def _any_live(self) -> bool:
        """Is a manager active? (What a submit needs to know: no outage state, no pause.)"""
        now = time.time()
        return any(registry.liveness(entry.record, now) == "active"
                   for entry in registry.read_all(self.client.broker).values())

    def status(self, tid: str | None = None) -> WorkerInfo:
        """One manager's record (short TIDs work); without ``tid``, the oldest live one."""
        workers = self.list(all=True)
        if tid is None:
            live = [w for w in workers if w.status == "active"]
            if not live:
                raise NotFound("no live manager (start one with 'weft worker start')")
            return live[0]
        full = self.client.resolve_tid(tid)
        for worker in workers:
            if worker.tid == full:
                return worker
        raise NotFound(f"no manager {tid}")

    # -- starting -----------------------------------------------------------
    def start(self, *, foreground: bool = False, wait: bool = True, **options: Any) -> WorkerInfo:
        """Start a manager; return its registry record once it is up.

        Options are the manager's (those of ``weft worker start``): ``name``,
        ``idle_timeout`` (seconds, 0 = never), ``max_concurrency``,
        ``grace``, and the capacity it offers (``cpus``, ``memory_mb``,
        ``gpus``, ``gpu_ids`` ...). ``foreground=True`` runs it in this
        process until it stops.
        """
        ctx = self.client.context
        tid = str(self.client.broker.generate_id())
        opts = {k: v for k, v in options.items() if v is not None}
        if opts.get("metrics_addr"):
            from weft.metrics.server import parse_addr

            parse_addr(str(opts["metrics_addr"]))  # refuse a bad address before starting
        if opts.get("gpu_ids"):
            _check_gpu_ids(ctx.settings.gpu_simulate, opts["gpu_ids"])
        argv = [sys.executable, "-m", "weft.runtime.manager_main", "--root", str(ctx.root),
                "--tid", tid, "--options", json.dumps(opts)]
        if foreground:
            from weft.runtime.manager_main import main

            main(argv[3:])
            return self.status(tid)
        logs = private_dir(ctx.weft_dir / "logs")
        log_path = logs / f"manager-{tid}.log"
        pid = _spawn_detached(argv, str(log_path))
        if not wait:
            return WorkerInfo(tid, "starting", pid, registry.HOST, {"tid": tid})
        return self._await_record(tid, pid, log_path)

    def _await_record(self, tid: str, pid: int, log_path: Any) -> WorkerInfo:
        timeout = self.client.context.settings.manager_start_timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in registry.read_all(self.client.broker).values():
                if entry.tid == tid and entry.record.get("status") == "active":
                    rec = entry.record
                    return WorkerInfo(tid, "active", int(rec["pid"]), str(rec["host"]), rec)
            code = _exit_status(pid)
            if code is not None:
                tail = _tail(log_path)
                if code == UsageError.exit_code:  # bad option or setting: the caller's to fix
                    raise UsageError(f"manager refused to start: {tail.removeprefix('weft manager: ')}")
                raise ManagerUnavailable(f"manager exited at start (code {code}): {tail}")
            time.sleep(0.005)
        raise ManagerUnavailable(f"manager {tid} did not register within {timeout:g}s; see {log_path}")

    def ensure_running(self) -> WorkerInfo | None:
        """Start a manager unless a live one exists; None when one already runs."""
        if time.monotonic() < self._live_until:
            return None
        with self._start_lock():
            if self._any_live():
                self._live_until = time.monotonic() + 2.0
                return None
            info = self.start()
            self._live_until = time.monotonic() + 2.0
            return info

    @contextmanager
    def _start_lock(self) -> Iterator[None]:
        """One starter per project at a time, so two clients do not both start one."""
        path = self.client.context.weft_dir / "manager-start.lock"
        fd = open_private(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- stopping -----------------------------------------------------------
    def stop(self, tid: str | None = None, *, all: bool = False, timeout: float = 30.0,  # noqa: A002
             force: bool = False) -> builtins.list[WorkerInfo]:
        """Stop one manager (``tid``), the oldest live one, or ``all=True``.

        A graceful stop lets running tasks finish within the manager's grace;
        ``force`` kills the process groups at once. Returns once each
        manager has recorded ``stopped`` and (on this host) its process is gone.
        """
        if all:
            targets = self.list()
        elif tid is not None:
            targets = [self.status(tid)]
        else:
            targets = self.list()[:1]
            if not targets:
                raise NotFound("no live manager to stop")
        for worker in targets:
            if force:
                self._force(worker)
            else:
                self.client.task(worker.tid).control("STOP", timeout=min(timeout, 10.0))
        return [self._await_stopped(w, timeout) for w in targets]

    def _force(self, worker: WorkerInfo) -> None:
        for pid in (worker.pid, worker.record.get("launcher_pid")):
            if pid and worker.host == registry.HOST:
                try:
                    os.killpg(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass

    def _await_stopped(self, worker: WorkerInfo, timeout: float) -> WorkerInfo:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = registry.read_all(self.client.broker).get(worker.tid)
            if entry is not None and registry.liveness(entry.record, time.time()) != "active":
                if entry.record.get("status") == "active":
                    self._write_stopped(entry, "killed (--force)")
                    entry = registry.read_all(self.client.broker)[worker.tid]
                if not self._process_gone(worker):
                    time.sleep(0.02)
                    continue
                return WorkerInfo(worker.tid, "stopped", worker.pid, worker.host, entry.record)
            time.sleep(0.02)
        raise WaitTimeout(f"manager {worker.tid} did not stop within {timeout:g}s "
                          "(try --force)")

    @staticmethod
    def _process_gone(worker: WorkerInfo) -> bool:
        """On this host, 'stopped' also means the process has exited."""
        if worker.host != registry.HOST:
            return True
        from weft.resources.pids import pid_alive

        for pid in (worker.pid, worker.record.get("launcher_pid")):
            if pid and pid_alive(int(pid), None):
                _exit_status(int(pid))  # reap it if it is our own child
                if pid_alive(int(pid), None):
                    return False
        return True

    def _write_stopped(self, entry: registry.Entry, reason: str) -> None:
        broker = self.client.broker
        record = dict(entry.record, status="stopped", stop_reason=reason, heartbeat_at=time.time())
        broker.write(WORKERS_REGISTRY, json.dumps(record, separators=(",", ":"), default=str))
        broker.delete(WORKERS_REGISTRY, [entry.message_id])


def _spawn_detached(argv: list[str], log_path: str) -> int:
    """Start a manager in its own session, output to its log; no Popen to outlive."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | NOFOLLOW, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    try:
        return os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=actions, setsid=True)
    except OSError as exc:  # e.g. ELOOP: the log path is a symlink (O_NOFOLLOW)
        raise ManagerUnavailable(f"cannot start a manager logging to {log_path}: "
                                 f"{exc.strerror or exc}") from None


def _exit_status(pid: int) -> int | None:
    """The exit code of our child ``pid`` if it has ended (reaping it), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done else None


def _tail(path: Any, lines: int = 3) -> str:
    try:
        text = open(path, encoding="utf-8", errors="replace").read().strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def _check_gpu_ids(simulate: str | None, gpu_ids: builtins.list[int]) -> None:
    """Refuse cards this host does not have before a manager is started.

    The GPU reader's "no GPUs" warning is silenced: the refusal says it.
    """
    import logging

    from weft.resources.gpu import make_gpu_reader

    gpu_log = logging.getLogger("weft.resources")
    level = gpu_log.level
    gpu_log.setLevel(logging.ERROR)
    try:
        have = sorted(d.index for d in make_gpu_reader(simulate).devices())
    finally:
        gpu_log.setLevel(level)
    unknown = [i for i in gpu_ids if i not in have]
    if unknown:
        raise UsageError(f"--gpu-ids: unknown GPU id(s) {unknown}; this host has "
                         f"{have or 'none'}")


def _outage() -> Any:
    """weft.runtime.outage, imported when a listing needs it (not by every submit)."""
    from weft.runtime import outage

    return outage
