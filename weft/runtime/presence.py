"""Noticing that a manager's broker file was deleted (or replaced) under it.

A SQLite connection keeps working on a deleted file: the manager would run
on, heartbeating into an inode nobody can open, unreachable by ``weft worker
stop --all`` and by every client, while its children's results vanish with
the inode. So the manager checks once a heartbeat that the path it opened
still names the file it has open, and when it does not, stops its children
and itself (see ``Manager.step``). Postgres has no file: nothing to check.
"""

from __future__ import annotations

import os
from pathlib import Path

from weft.context import Context


class BrokerPresence:
    """The identity (device, inode) of the broker file when the manager opened it."""

    def __init__(self, ctx: Context) -> None:
        self.path: Path | None = None
        self._identity: tuple[int, int] | None = None
        if ctx.backend == "sqlite":
            self.path = ctx.broker_path
            self._identity = _identity(self.path)

    def lost(self) -> str | None:
        """Why the broker this process has open is no longer the project's, or None."""
        if self.path is None or self._identity is None:
            return None
        if not self.path.parent.exists():
            return f"the project directory {self.path.parent} was deleted"
        now = _identity(self.path)
        if now is None:
            return f"the broker file {self.path} was deleted"
        if now != self._identity and now != (-1, -1):
            return f"the broker file {self.path} was replaced by another file"
        return None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return (-1, -1)  # there but unreadable: not "deleted" (the outage path handles it)
    return st.st_dev, st.st_ino
