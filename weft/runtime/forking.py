"""Forking task processes: the pipes of one launch, a batch forked back to back, the child's setup.

Why batches: after every ``fork()`` each page the launcher writes is copied
(a copy-on-write fault, about 4 us on the development VM) while a task
process still shares it, and task processes live on until their command
ends. Faults therefore cost per *fork interval*, not per write: forking the
launches a manager sent together back to back, and doing the bookkeeping of
all of them after the last fork, pays the launcher's working set once per
batch instead of once per task (docs/performance.md).

Why the child's code is lean: in a fresh fork every first-run line of Python
copies pages too, so the child calls the C functions behind ``signal``.
"""

from __future__ import annotations

import _signal
import gc
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

from weft.runtime import child
from weft.runtime.proctitle import set_title

_CHILD_DEFAULTS = tuple(int(s) for s in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM,
                                           signal.SIGPIPE))


# The launcher's environment, read once: it never changes, and forks inherit it.
_BASE_ENV: dict[bytes, bytes] = dict(os.environb)


@dataclass
class Pipes:
    """One launch's pipes: (read, write) ends, None where the launch has no such stream."""

    out: tuple[int, int] | None
    err: tuple[int, int] | None
    res: tuple[int, int]
    stdin: tuple[int, int] | None
    go: tuple[int, int]

    @classmethod
    def open(cls, op: dict[str, Any]) -> Pipes:
        capture = op.get("capture", True)
        wants_stdin = op.get("stdin") is not None or bool(op.get("stdin_stream"))
        opened: list[tuple[int, int]] = []
        try:
            def pipe() -> tuple[int, int]:
                opened.append(os.pipe())
                return opened[-1]

            return cls(pipe() if capture else None, pipe() if capture else None, pipe(),
                       pipe() if wants_stdin else None, pipe())
        except OSError:
            for ends in opened:
                _close(*ends)
            raise

    def child_ends(self) -> list[int]:
        """The ends the task process keeps; the launcher closes them after the fork."""
        return [p[1] for p in (self.out, self.err, self.res) if p is not None] + \
            [p[0] for p in (self.stdin, self.go) if p is not None]

    def close_all(self) -> None:
        for ends in (self.out, self.err, self.res, self.stdin, self.go):
            if ends is not None:
                _close(*ends)


def fork_all(batch: list[tuple[dict[str, Any], Pipes]]) -> list[int | OSError]:
    """Fork one task process per launch, back to back; a pid or the fork's error each."""
    sys.stdout.flush()
    sys.stderr.flush()
    # Objects that exist now are never collected by this process again, so
    # the garbage collector does not touch (and copy) their pages in children.
    gc.freeze()
    pids: list[int | OSError] = []
    for op, pipes in batch:
        try:
            pid = os.fork()
        except OSError as exc:
            pids.append(exc)
            continue
        if pid == 0:
            become_child(op, pipes)
        pids.append(pid)
    return pids


def become_child(op: dict[str, Any], pipes: Pipes) -> NoReturn:
    """In the forked process: own session, standard fds, the go-ahead, then the target."""
    try:
        gc.disable()
        os.setsid()
        _signal.set_wakeup_fd(-1)
        for sig in _CHILD_DEFAULTS:
            _signal.signal(sig, int(signal.SIG_DFL))
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(pipes.stdin[0] if pipes.stdin is not None else devnull, 0)
        os.dup2(pipes.out[1] if pipes.out is not None else devnull, 1)
        os.dup2(pipes.err[1] if pipes.err is not None else devnull, 2)
        os.dup2(pipes.res[1], 3, inheritable=False)
        os.dup2(pipes.go[0], 4, inheritable=False)
        os.closerange(5, 1 << 16)  # the launcher's fds, other launches' pipes included
        # Wait for the go-ahead: sent once the task's start is on record, so a
        # crash can never leave a task that ran with a log saying it never
        # started (recovery would run it again). No go-ahead (the launcher
        # died first, closing the pipe): exit without running anything.
        if os.read(4, 1) != b"g":
            os._exit(75)
        os.close(4)
        set_title(f"weft:{op['tid'][-10:]}:{op.get('name') or 'task'}:running")
        env = command_env(op)
        if env is None:
            # Only the task's additions travel; apply them to the inherited environment.
            for key, value in (op.get("env") or {}).items():
                os.environ[key] = value
            for key in op.get("unset_env") or ():
                os.environ.pop(key, None)
        child.run(op, 3, env)
    except BaseException:  # noqa: BLE001
        os._exit(70)


def command_env(op: dict[str, Any]) -> dict[bytes, bytes] | None:
    """A command's environment as bytes, built from the launcher's without touching
    ``os.environ`` (whose Python-level updates copy some 40 pages in a fresh fork);
    None for a function (its code reads ``os.environ``) or a task that changes
    ``PATH`` (``posix_spawnp`` searches the caller's own ``PATH``)."""
    if op.get("argv") is None:
        return None
    delta: dict[str, str] = op.get("env") or {}
    unset = op.get("unset_env") or ()
    if "PATH" in delta or "PATH" in unset:
        return None
    env = _BASE_ENV.copy()
    for key, value in delta.items():
        env[os.fsencode(key)] = os.fsencode(value)
    for key in unset:
        env.pop(os.fsencode(key), None)
    return env


def _close(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
