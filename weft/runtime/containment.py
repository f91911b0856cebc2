"""Containment: every process a task starts ends with the task.

A process group is not enough. A task's child can call ``setsid()``, fork
again and ignore SIGTERM (daemons and many training launchers do), and then
nothing sent to the task's group reaches it. Weft layers three mechanisms,
each used when the host has it, and reports which one is in charge
(:func:`describe`, shown by ``weft worker status``):

``cgroup`` (:mod:`weft.runtime.cgroups`)
    A cgroup v2 that the host delegates to weft (``WEFT_CGROUP``, or the
    launcher's own cgroup when its ``cgroup.subtree_control`` already enables
    the memory controller and it is writable). Each task gets its own child
    cgroup: ``memory.max`` and ``cpu.max`` enforce ``--memory`` and
    ``--cpus`` in the kernel, and ``cgroup.kill`` ends the whole tree at once.
``subreaper``
    The Consumer process marks itself a child subreaper
    (``prctl(PR_SET_CHILD_SUBREAPER)``), so a descendant that detaches is
    re-parented to it instead of to init and stays in its process tree: the
    launcher can walk that tree (and sum its memory), signal every member
    whatever its session, and the Consumer ends whatever is left below it
    when its target returns. The launcher is a subreaper too: when a
    Consumer is killed its descendants come to the launcher, which ends
    every child it did not fork as a Consumer.
``cookie``
    Every process a task execs carries ``WEFT_TASK_TID`` in its environment.
    After a task was killed or died by a signal, the launcher scans ``/proc``
    for this user's processes that carry the task's TID and kills them: the
    last net, for hosts without the two above.

Only the launcher and the Consumer process import this module; it imports
nothing heavy, so the launcher's forks stay cheap.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from typing import Any

from weft.runtime.cgroups import Cgroups, find_cgroup, join_cgroup

PR_SET_CHILD_SUBREAPER = 36
COOKIE = "WEFT_TASK_TID"
FREEZE_ROUNDS = 20
SETTLE_GRACE = 1.0

_libc: Any = None


def _prctl() -> Any:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.prctl  # noqa: B018 - raises AttributeError off Linux
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def become_subreaper() -> bool:
    """Adopt detached descendants instead of letting init have them (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = _prctl()
    if libc is None:
        return False
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


# -- the process tree, read from /proc ------------------------------------
def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (zombies included), from ``/proc/PID/task/*/children``."""
    out: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for thread in threads:
        try:  # raw reads: no file objects, which cost page copies in a fresh fork
            fd = os.open(f"/proc/{pid}/task/{thread}/children", os.O_RDONLY | os.O_CLOEXEC)
            try:
                out.extend(int(word) for word in os.read(fd, 1 << 16).split())
            finally:
                os.close(fd)
        except (OSError, ValueError):
            continue
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, parents before their children."""
    seen: set[int] = set()
    order: list[int] = []
    stack = children(pid)
    while stack:
        current = stack.pop()
        if current in seen or current == pid:
            continue
        seen.add(current)
        order.append(current)
        stack.extend(children(current))
    return order


def alive(pid: int) -> bool:
    """True for a process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2: stat.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"")


def _kill(pid: int, sig: int) -> None:
    if pid <= 1 or pid == os.getpid():
        return  # 0 and -1 would signal our own group or every process we may signal
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _killpg(pgid: int, sig: int) -> None:
    if pgid <= 1 or pgid == os.getpgrp():
        return  # never our own group, never "every process" (-1)
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_tree(pid: int, sig: int) -> None:
    """Send ``sig`` to ``pid``, its process group and every descendant, whatever their session.

    SIGKILL freezes the tree first (SIGSTOP, walking again until no new
    member appears) so that nothing forks between the walk and the kill.
    """
    if sig != signal.SIGKILL:
        _killpg(pid, sig)
        for member in descendants(pid):
            _kill(member, sig)
        return
    _killpg(pid, signal.SIGSTOP)
    frozen: list[int] = []
    seen: set[int] = set()
    for _ in range(FREEZE_ROUNDS):
        fresh = [p for p in descendants(pid) if p not in seen]
        if not fresh:
            break
        for member in fresh:
            _kill(member, signal.SIGSTOP)
            seen.add(member)
            frozen.append(member)
    _killpg(pid, signal.SIGKILL)
    _kill(pid, signal.SIGKILL)
    for member in frozen:
        _kill(member, signal.SIGKILL)


def _reap_any() -> bool:
    """Reap one finished child of this process; False when none is waiting."""
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return False
    except InterruptedError:
        return True
    return pid != 0


def _has_children() -> bool:
    """Reap what has finished; True if a child (so, in a subreaper, any descendant) is left.

    One syscall in the common case (no children at all), so a task that
    started nothing pays nothing for containment when it ends.
    """
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        except InterruptedError:
            continue
        if pid == 0:
            return True


def end_descendants(grace: float = SETTLE_GRACE) -> int:
    """In a subreaper whose target has ended: end everything still below it.

    Leftovers get SIGTERM, then SIGKILL after ``grace`` seconds; every one
    is reaped. Returns how many processes were still running. Called by the
    Consumer process, whose detached grandchildren were re-parented to it.
    """
    if not _has_children():
        return 0
    me = os.getpid()
    left = [p for p in descendants(me) if alive(p)]
    if not left:
        return 0
    for member in left:
        _kill(member, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        while _reap_any():
            pass
        if not any(alive(p) for p in descendants(me)):
            return len(left)
        time.sleep(0.02)
    for _ in range(FREEZE_ROUNDS):
        rest = [p for p in descendants(me) if alive(p)]
        if not rest:
            break
        for member in rest:
            _kill(member, signal.SIGSTOP)
        for member in rest:
            _kill(member, signal.SIGKILL)
        time.sleep(0.01)
        while _reap_any():
            pass
    while _reap_any():
        pass
    return len(left)


def cookie_pids(tid: str, context: str | None = None, *, proc: str = "/proc") -> list[int]:
    """This user's processes whose environment carries ``WEFT_TASK_TID=tid``.

    With ``context``, ``WEFT_CONTEXT`` must match too: TIDs are unique within
    a project, not across every project of a user.
    """
    needle = f"{COOKIE}={tid}".encode()
    where = f"WEFT_CONTEXT={context}".encode() if context else None
    uid, me = os.getuid(), os.getpid()
    found: list[int] = []
    try:
        names = os.listdir(proc)
    except OSError:
        return found
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if os.stat(f"{proc}/{name}").st_uid != uid:
                continue
            with open(f"{proc}/{name}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        entries = env.split(b"\0")
        if needle in entries and (where is None or where in entries):
            found.append(int(name))
    return found


# -- what the launcher uses -------------------------------------------------
class Containment:
    """The launcher's view: prepare a task, signal its tree, clean up after it."""

    def __init__(self, env: dict[str, str] | None = None, *, context: str | None = None) -> None:
        self.context = context
        parent, self.cgroup_reason = find_cgroup(env)
        self.cgroups = Cgroups(parent) if parent else None
        self.subreaper = become_subreaper()
        self.cookie = os.path.isdir("/proc/self")

    def prepare(self, op: dict[str, Any]) -> None:
        """Before the fork: give the task its cgroup (the child joins it)."""
        if self.cgroups is None:
            return
        limits = op.get("limits") or {}
        path = self.cgroups.create(op["tid"], limits.get("memory_mb"), op.get("cpus"))
        if path:
            op["cgroup"] = path

    def signal(self, tid: str, pid: int, sig: int) -> None:
        if sig == signal.SIGKILL and self.cgroups is not None:
            self.cgroups.kill(tid)
        signal_tree(pid, sig)

    def after_exit(self, tid: str, pid: int, *, thorough: bool, consumers: set[int]) -> None:
        """The Consumer was reaped: nothing of its task may keep running.

        Its process group goes, its cgroup is killed, and children the
        launcher adopted (it is a subreaper) that are not Consumers are ended
        with their trees. When the task was killed or died by a signal, the
        cookie scan catches what escaped even that.
        """
        _killpg(pid, signal.SIGKILL)
        if self.cgroups is not None:
            self.cgroups.remove(tid)
        self.end_strays(consumers)
        if thorough and self.cookie:
            for stray in cookie_pids(tid, self.context):
                signal_tree(stray, signal.SIGKILL)

    def end_strays(self, consumers: set[int]) -> None:
        if not self.subreaper:
            return
        me = os.getpid()
        deadline = time.monotonic() + SETTLE_GRACE
        while time.monotonic() < deadline:
            strays = [p for p in children(me) if p not in consumers]
            if not strays:
                return
            for stray in strays:
                signal_tree(stray, signal.SIGKILL)
            for stray in strays:
                try:
                    os.waitpid(stray, os.WNOHANG)
                except ChildProcessError:
                    pass
            time.sleep(0.005)

    def oom_killed(self, tid: str) -> bool:
        return self.cgroups is not None and self.cgroups.oom_killed(tid)


def enter(launch: dict[str, Any]) -> None:
    """In the freshly forked Consumer process, before the target runs."""
    path = launch.get("cgroup")
    if path:
        join_cgroup(path)
    become_subreaper()


def describe(env: dict[str, str] | None = None) -> dict[str, Any]:
    """What the registry record says about containment on this host (same detection as the launcher)."""
    parent, reason = find_cgroup(env)
    linux = sys.platform.startswith("linux")
    subreaper = linux and _prctl() is not None
    cookie = os.path.isdir("/proc/self")
    if parent:
        mechanism = "cgroup"
    elif subreaper:
        mechanism = "subreaper"
    else:
        mechanism = "cookie" if cookie else "process-group"
    layers = [name for name, on in (("cgroup", bool(parent)), ("subreaper", subreaper),
                                    ("cookie", cookie), ("process-group", True)) if on]
    return {"mechanism": mechanism, "layers": layers, "cgroup": parent, "cgroup_reason": reason}
