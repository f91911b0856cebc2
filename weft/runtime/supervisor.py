"""The launcher process: fork, watch, kill and reap task processes.

One supervisor runs beside each manager. It is started as a fresh
interpreter that imports only what a task process needs and never opens a
broker connection, so every ``fork()`` it makes is cheap and carries no
broker state (ARCHITECTURE.md §7). For each launch it:

1. forks a Consumer process in its own process group (``child.run``);
2. streams the process's stdout/stderr back to the manager as frames;
3. enforces the deadline and the sampled memory/CPU limits by signalling
   the whole group (TERM, then KILL after a grace period);
4. reaps it and reports its outcome, rusage and why weft killed it, if it did.

If the manager dies, the supervisor does not abandon its tasks: it opens its
own broker connection (after its last fork) and finishes them itself
through :mod:`weft.runtime.orphan`, then exits.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import time
from typing import Any

from weft.runtime.containment import Containment
from weft.runtime.forking import Pipes, fork_all
from weft.runtime.frames import FrameSocket, PeerClosed
from weft.runtime.launch_memory import LaunchMemory
from weft.runtime.launched import Proc, now_or_never
from weft.runtime.proctitle import set_title
from weft.runtime.result_pipe import ResultPipe
from weft.runtime.stdin_pipe import StdinPipe

KILL_GRACE = 2.0
DRAIN_GRACE = 1.0
SAMPLE_EVERY = 0.25
READ_SIZE = 1 << 16
BACKLOG = 4 << 20  # bytes of frames waiting for the manager before we stop reading output


class Supervisor:
    def __init__(self, sock: socket.socket, *, root: str, manager_tid: str) -> None:
        self.link: FrameSocket | None = FrameSocket(sock)
        self.root = root
        self.manager_tid = manager_tid
        self.sel = selectors.DefaultSelector()
        self.procs: dict[str, Proc] = {}
        self.by_fd: dict[int, Proc] = {}
        self.by_pid: dict[int, Proc] = {}
        self.orphan: Any = None
        self.memory = LaunchMemory()
        self.stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # The manager decides when the supervisor ends; ignore terminal signals.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: None)
        self.sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.sel.register(sock, selectors.EVENT_READ, "link")
        self._link_events = selectors.EVENT_READ
        self.reads_paused = False
        self._telemetry: Any = None
        # Kills reach every process of a task, detached ones included (containment.py).
        self.containment = Containment(context=root)
        # Off by default: the preloaded modules double the launcher's memory and
        # every fork pays for the larger page tables (docs/performance.md).
        self._preloaded = os.environ.get("WEFT_LAUNCHER_PRELOAD", "").lower() not in (
            "1", "true", "yes", "on")

    def _preload(self) -> None:
        """At the first idle moment, import what weft's Python API needs.

        A task whose module uses the API (to submit child tasks, say) would
        otherwise import pydantic, the models and the broker code in every
        forked child, about 0.2 s of CPU each; imported here once, forks
        share them. Imports only: no broker connection is opened.
        """
        self._preloaded = True
        try:
            import weft.broker  # noqa: F401
            import weft.context  # noqa: F401
            import weft.models  # noqa: F401
        except Exception:  # noqa: BLE001 - an optimisation; a child imports on demand
            pass

    # -- main loop --------------------------------------------------------
    def serve(self) -> None:
        while True:
            self._pace_output()
            ready = self.sel.select(self._next_timeout())
            for key, _ in ready:
                self._on_ready(key.data, key.fd)
            if not ready and not self._preloaded:
                self._preload()
            self._reap()
            self._tick(time.monotonic())
            if self.link is not None:
                try:
                    self.link.flush()
                except PeerClosed:
                    self._lose_manager()
            if self.orphan is not None:
                self.orphan.poll()
            if (self.orphan is not None or self.stopping) and not self.procs:
                break
        if self.link is not None:
            self.link.flush_blocking()
        if self.orphan is not None:
            self.orphan.close()

    def _pace_output(self) -> None:
        """Back-pressure: while the manager has not taken BACKLOG bytes of frames, stop
        reading task output (the task blocks on its full pipe), so our memory stays
        bounded however fast a task writes; and wait for the link to be writable."""
        link = self.link
        backlog = link.pending_bytes if link is not None else 0
        full = backlog > BACKLOG
        if full != self.reads_paused:
            self.reads_paused = full
            for fd, proc in list(self.by_fd.items()):
                if proc.fds.get(fd) in ("stdout", "stderr"):
                    if full:
                        self.sel.unregister(fd)
                    else:
                        self.sel.register(fd, selectors.EVENT_READ, "child")
        if link is not None:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if backlog else 0)
            if events != self._link_events:
                self.sel.modify(link.sock, events, "link")
                self._link_events = events

    def _next_timeout(self) -> float:
        if self.link is not None and self.link.wants_write:
            return 0.005  # a large report is draining to the manager: keep it moving
        if self.orphan is not None:
            return 0.05
        return 0.05 if self.procs else 1.0

    def _on_ready(self, tag: Any, fd: int) -> None:
        if tag == "wake":
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        elif tag == "link":
            self._read_link()
        elif tag == "stdin":
            self._feed_stdin(fd)
        else:
            self._read_child(fd)

    # -- manager link -----------------------------------------------------
    def _read_link(self) -> None:
        assert self.link is not None
        try:
            frames = self.link.receive()
        except PeerClosed:
            frames = []
            self._lose_manager()
        launches: list[dict[str, Any]] = []
        for frame in frames:  # consecutive launches are forked together
            if frame.get("op") == "launch":
                launches.append(frame)
                continue
            if launches:
                self._launch_all(launches)
                launches = []
            self.handle_op(frame)
        if launches:
            self._launch_all(launches)

    def handle_op(self, op: dict[str, Any]) -> None:
        kind = op.get("op")
        if kind == "launch":
            self._launch_all([op])
        elif kind == "go":
            self.release(op["tid"])
        elif kind == "signal":
            self.signal_task(op["tid"], op["sig"], op.get("reason"), op.get("grace"))
        elif kind == "stdin":
            self._take_stdin(op)
        elif kind == "shutdown":
            self.stopping = True
        elif kind == "ping":
            self.emit({"ev": "pong", "t": time.time()})

    def emit(self, frame: dict[str, Any]) -> None:
        if self.orphan is not None:
            self.orphan.handle(frame)
            return
        if self.link is None:
            return
        try:
            self.link.send(frame, flush=False)  # written at the end of this loop turn
        except PeerClosed:
            self._lose_manager()
            self.emit(frame)  # the orphan host now takes it

    def _lose_manager(self) -> None:
        """The manager died: finish the running tasks ourselves."""
        if self.link is None:
            return
        self.sel.unregister(self.link.sock)
        self.link.close()
        self.link = None
        from weft.runtime.orphan import OrphanHost

        for proc in self.procs.values():  # nobody feeds a streamed stdin now: end it
            if proc.stdin is not None:
                proc.stdin.add(None, eof=True)
        self.orphan = OrphanHost(self, root=self.root, manager_tid=self.manager_tid)
        self.orphan.take_over(list(self.procs.values()), self.memory.launched,
                              list(self.memory.recent.values()))
        for tid in list(self.procs):  # adopted: every start is on record now
            self.release(tid)

    # -- launching --------------------------------------------------------
    def _launch_all(self, ops: list[dict[str, Any]]) -> None:
        """Fork the task processes of ``ops`` back to back (weft.runtime.forking), then track them."""
        batch: list[tuple[dict[str, Any], Pipes]] = []
        for op in ops:
            try:
                batch.append((op, Pipes.open(op)))
            except OSError as exc:
                self.emit({"ev": "spawn_failed", "tid": op["tid"],
                           "error": f"cannot open pipes: {exc.strerror}"})
                continue
            self.containment.prepare(op)
        for (op, pipes), pid in zip(batch, fork_all(batch), strict=True):
            if isinstance(pid, OSError):
                pipes.close_all()
                self.emit({"ev": "spawn_failed", "tid": op["tid"],
                           "error": f"fork failed: {pid.strerror}"})
            else:
                self._track(op, pipes, pid)

    def _track(self, op: dict[str, Any], pipes: Pipes, pid: int) -> None:
        tid = op["tid"]
        started = time.time()
        for fd in pipes.child_ends():
            os.close(fd)
        timeout = op.get("timeout")
        proc = Proc(
            tid=tid,
            pid=pid,
            launch=op,
            started_at=started,
            deadline=time.monotonic() + timeout if timeout else None,
            result=ResultPipe(op.get("max_result")),
            go_fd=pipes.go[1],
        )
        for ends, name in ((pipes.out, "stdout"), (pipes.err, "stderr"), (pipes.res, "result")):
            if ends is None:
                continue
            fd = ends[0]
            os.set_blocking(fd, False)
            proc.fds[fd] = name
            self.by_fd[fd] = proc
            if not (self.reads_paused and name != "result"):
                self.sel.register(fd, selectors.EVENT_READ, "child")
        streamed = bool(op.get("stdin_stream"))
        if pipes.stdin is not None:
            stdin_data = op.get("stdin")
            proc.stdin = StdinPipe(pipes.stdin[1], self.sel, streamed=streamed,
                                   initial=stdin_data.encode() if isinstance(stdin_data, str) else b"")
            self.by_fd[pipes.stdin[1]] = proc
        self.procs[tid] = proc
        self.by_pid[pid] = proc
        self.memory.launch(tid, int((op.get("task") or {}).get("attempt") or 1), self.procs)
        self.emit({"ev": "started", "tid": tid, "pid": pid, "t": started})
        if streamed:
            self.emit({"ev": "stdin_wanted", "tid": tid})

    def release(self, tid: str) -> None:
        """Let a forked task run its target: its start is on record (see ``forking.become_child``)."""
        proc = self.procs.get(tid)
        if proc is None or proc.go_fd is None:
            return
        try:
            os.write(proc.go_fd, b"g")
        except OSError:
            pass  # it died meanwhile: reaped as usual
        os.close(proc.go_fd)
        proc.go_fd = None

    # -- stdin ------------------------------------------------------------
    def _take_stdin(self, op: dict[str, Any]) -> None:
        """The next piece of a streamed stdin, from the manager (``eof``: the last)."""
        proc = self.procs.get(op.get("tid", ""))
        if proc is not None and proc.stdin is not None:
            data = op.get("d")
            proc.stdin.add(data if isinstance(data, bytes) else None, eof=bool(op.get("eof")))

    def _feed_stdin(self, fd: int) -> None:
        proc = self.by_fd.get(fd)
        if proc is None or proc.stdin is None or proc.stdin.fd != fd:
            return
        if proc.stdin.writable():
            self.emit({"ev": "stdin_wanted", "tid": proc.tid})
        if proc.stdin.fd is None:
            self.by_fd.pop(fd, None)

    def _read_child(self, fd: int) -> None:
        proc = self.by_fd.get(fd)
        if proc is None:
            return
        name = proc.fds[fd]
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_fd(proc, fd)
            return
        if name == "result":
            proc.result.add(data)
        else:
            # Exactly the bytes read, in the order read across both streams.
            self.emit({"ev": "out", "tid": proc.tid, "s": name, "d": data})

    def _close_fd(self, proc: Proc, fd: int) -> None:
        try:
            self.sel.unregister(fd)
        except KeyError:  # paused by back-pressure
            pass
        self.by_fd.pop(fd, None)
        proc.fds.pop(fd, None)
        os.close(fd)

    # -- signals, deadlines, limits --------------------------------------
    def signal_task(self, tid: str, sig: str, reason: str | None, grace: float | None) -> None:
        proc = self.procs.get(tid)
        if proc is None or proc.status is not None:
            return
        if reason and proc.killed_for is None and sig in ("TERM", "KILL"):
            proc.killed_for = reason
        self.containment.signal(proc.tid, proc.pid, getattr(signal, "SIG" + sig))
        if sig == "TERM":
            proc.kill_at = time.monotonic() + (KILL_GRACE if grace is None else grace)

    def _tick(self, now: float) -> None:
        for proc in list(self.procs.values()):
            if proc.status is None:
                if proc.deadline is not None and now >= proc.deadline and proc.killed_for is None:
                    self.signal_task(proc.tid, "TERM", "timeout", KILL_GRACE)
                if proc.kill_at is not None and now >= proc.kill_at:
                    self.containment.signal(proc.tid, proc.pid, signal.SIGKILL)
                    proc.kill_at = None
                if now >= proc.next_sample:
                    proc.next_sample = now + SAMPLE_EVERY
                    self._sample(proc)
            elif (proc.reaped_at is not None and now - proc.reaped_at > DRAIN_GRACE
                  and not self.reads_paused):
                for fd in list(proc.fds):
                    self._read_child(fd) if proc.fds.get(fd) == "result" else None
                    if fd in proc.fds:
                        self._close_fd(proc, fd)
            if proc.done:
                self._finish(proc)

    def _sample(self, proc: Proc) -> None:
        limits = proc.launch.get("limits") or {}
        if not limits and now_or_never(proc):
            return
        if self._telemetry is None:
            from weft.resources import telemetry

            self._telemetry = telemetry
        usage = self._telemetry.process_tree_usage(proc.pid)
        if usage is None:
            return
        rss, cpu = usage
        proc.peak_rss_mb = max(proc.peak_rss_mb, rss)
        proc.cpu_s = max(proc.cpu_s, cpu)
        mem = limits.get("memory_mb")
        if mem and rss > mem and proc.killed_for is None:
            proc.killed_for = "memory_limit"
            self.containment.signal(proc.tid, proc.pid, signal.SIGKILL)
        cpu_limit = limits.get("cpu_seconds")
        if cpu_limit and cpu > cpu_limit and proc.killed_for is None:
            proc.killed_for = "cpu_limit"
            self.containment.signal(proc.tid, proc.pid, signal.SIGKILL)

    def _reap(self) -> None:
        while self.by_pid:
            try:
                pid, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            proc = self.by_pid.pop(pid, None)
            if proc is None:
                continue
            proc.status = status
            proc.rusage = rusage
            proc.reaped_at = time.monotonic()
            # Anything the task left behind goes with it, detached or not.
            if proc.killed_for is None and self.containment.oom_killed(proc.tid):
                proc.killed_for = "memory_limit"
            self.containment.after_exit(
                proc.tid, pid, consumers=set(self.by_pid),
                thorough=proc.killed_for is not None or os.WIFSIGNALED(status))
            if proc.stdin is not None and proc.stdin.fd is not None:
                self.by_fd.pop(proc.stdin.fd, None)
                proc.stdin.close()
            if proc.go_fd is not None:
                os.close(proc.go_fd)
                proc.go_fd = None

    def _finish(self, proc: Proc) -> None:
        del self.procs[proc.tid]
        outcome = proc.result.outcome()
        status = proc.status or 0
        wait = (
            {"signal": os.WTERMSIG(status)}
            if os.WIFSIGNALED(status)
            else {"code": os.waitstatus_to_exitcode(status)}
        )
        maxrss_mb = (proc.rusage.ru_maxrss / 1024.0) if proc.rusage else 0.0
        cpu_s = (proc.rusage.ru_utime + proc.rusage.ru_stime) if proc.rusage else 0.0
        frame = {
            "ev": "exit",
            "tid": proc.tid,
            "pid": proc.pid,
            "outcome": outcome,
            "wait": wait,
            "killed_for": proc.killed_for,
            "peak_rss_mb": round(max(maxrss_mb, proc.peak_rss_mb), 2),
            "cpu_s": round(max(cpu_s, proc.cpu_s), 4),
            "started_at": proc.started_at,
            "t": time.time(),
        }
        # If the manager dies before recording it, the orphan host records it instead.
        self.memory.report(proc, frame, proc.result.size)
        self.emit(frame)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="weft-supervisor")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--manager-tid", required=True)
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    set_title(f"weft:{args.manager_tid[-10:]}:launcher")
    Supervisor(sock, root=args.root, manager_tid=args.manager_tid).serve()


if __name__ == "__main__":
    main()
