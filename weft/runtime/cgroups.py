"""Per-task cgroup v2, when the host delegates one to weft.

With a delegated cgroup (see :func:`find_cgroup`), each task gets a child
cgroup: ``memory.max`` and ``cpu.max`` enforce ``--memory`` and ``--cpus``
in the kernel, ``memory.oom.group`` makes an out-of-memory kill take the
whole task, and ``cgroup.kill`` ends every process in it at once, however
it detached. Used by :mod:`weft.runtime.containment`; without a delegated
cgroup (CI here has none) the other mechanisms there do the work.

weft never moves processes around to make a cgroup usable: the parent must
already enable the memory controller for its children, which is what
delegation (systemd ``Delegate=yes``, a container runtime) provides.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def find_cgroup(env: dict[str, str] | None = None, *, root: str = CGROUP_ROOT,
                self_cgroup: str = "/proc/self/cgroup") -> tuple[str | None, str]:
    """The delegated cgroup v2 to put tasks under, or ``None`` and why not."""
    env = os.environ if env is None else env  # type: ignore[assignment]
    assert env is not None
    wanted = env.get("WEFT_CGROUP", "")
    if wanted.lower() in ("0", "off", "no", "false"):
        return None, "cgroups disabled by WEFT_CGROUP"
    if not os.path.exists(os.path.join(root, "cgroup.controllers")):
        return None, f"no cgroup v2 hierarchy at {root}"
    path = wanted
    if not path:
        try:
            with open(self_cgroup) as fh:
                lines = [ln.strip() for ln in fh if ln.startswith("0::")]
        except OSError:
            lines = []
        if not lines:
            return None, "this process is not in a cgroup v2"
        path = os.path.join(root, lines[0][3:].lstrip("/"))
    try:
        with open(os.path.join(path, "cgroup.subtree_control")) as fh:
            enabled = fh.read().split()
    except OSError:
        return None, f"cannot read {path}/cgroup.subtree_control"
    if "memory" not in enabled:
        return None, f"{path} does not delegate the memory controller to child cgroups"
    if not os.access(path, os.W_OK):
        return None, f"{path} is not writable by this user"
    return path, f"delegated cgroup {path}"


class Cgroups:
    """One child cgroup per task under a delegated parent."""

    def __init__(self, parent: str) -> None:
        self.parent = parent
        self.pending: set[str] = set()  # directories to remove once empty

    def path(self, tid: str) -> str:
        return os.path.join(self.parent, f"weft-{tid}")

    def create(self, tid: str, memory_mb: float | None, cpus: float | None) -> str | None:
        path = self.path(tid)
        try:
            os.makedirs(path, exist_ok=True)
            if memory_mb:
                _write(path, "memory.max", str(int(memory_mb * 1024 * 1024)))
                _write(path, "memory.oom.group", "1", optional=True)
            if cpus:
                _write(path, "cpu.max", f"{max(1000, int(cpus * 100_000))} 100000", optional=True)
        except OSError:
            return None
        return path

    def kill(self, tid: str) -> None:
        try:
            _write(self.path(tid), "cgroup.kill", "1")
        except OSError:
            pass

    def oom_killed(self, tid: str) -> bool:
        try:
            with open(os.path.join(self.path(tid), "memory.events")) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value or 0) > 0:
                        return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self, tid: str) -> None:
        self.kill(tid)
        self.pending.add(self.path(tid))
        for path in list(self.pending):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:
                continue  # still busy: try again after the next task
            self.pending.discard(path)


def _write(path: str, name: str, value: str, *, optional: bool = False) -> None:
    try:
        with open(os.path.join(path, name), "w") as fh:
            fh.write(value)
    except OSError:
        if not optional:
            raise


def join_cgroup(path: str) -> bool:
    """Move the calling process into ``path`` (the Consumer does, before running anything)."""
    try:
        _write(path, "cgroup.procs", "0")
    except OSError:
        return False
    return True
