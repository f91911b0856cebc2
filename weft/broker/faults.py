"""Saying what is wrong with a SQLite broker, from the file and its directory.

SQLite and simplebroker report symptoms ("attempt to write a readonly
database", "unable to open database file", a lock timeout). Different causes
share symptoms and need different cures, and a wrong guess is dangerous: a
healthy file on a read-only mount called "corrupt", with advice to remove it,
would lose every queued task. So when the broker cannot be used, weft looks
at the thing itself (the mount, the file's attributes and mode, the lock, the
database header and SQLite's own integrity check) and names the first cause
it finds: missing, read-only, permission denied, locked or corrupt. No
message suggests removing a file.

Entry points:

- :func:`before_open`: the cheap checks (a few ``stat``-like calls) that
  stop simplebroker from retrying a hopeless open for its whole lock timeout;
  :func:`refuse_unusable` raises what it (or a wrong header) finds.
- :func:`explain`: after an error, the cause behind the symptom
  (:func:`as_broker_error` wraps it as the one-line BrokerError); it opens the
  file only when the caller says no connection is open in this process
  (closing any descriptor of a file drops the process's POSIX locks on it,
  SQLite's included).
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path

from weft.errors import BrokerError

SQLITE_HEADER = b"SQLite format 3\x00"
_FS_IOC_GETFLAGS = 0x80086601  # Linux: read the chattr flags of an open file
_FS_IMMUTABLE_FL = 0x10
_FS_APPEND_FL = 0x20
_LOCKED_WORDS = ("locked", "busy")
_DAMAGE_WORDS = ("not a database", "not a valid sqlite", "malformed", "corrupt")


@dataclass(frozen=True)
class Fault:
    """What is wrong (``kind``) and one line saying so, with what to do."""

    kind: str  # "missing" | "read-only" | "permission" | "locked" | "corrupt"
    detail: str


def refuse_unusable(path: Path, *, may_open: bool) -> None:
    """Refuse at once a broker that cannot work (simplebroker would retry for seconds).

    ``may_open``: this process has no broker connection open, so files may be
    opened to look: closing *any* descriptor of a file drops every POSIX
    lock the process holds on it, SQLite's included.
    """
    fault = before_open(path, may_open=may_open)
    if fault is None and may_open and path.exists():
        fault = damage(path) if _header_wrong(path) else None
    if fault is not None:
        raise BrokerError(f"broker error at {path}: {fault.detail}")


def as_broker_error(exc: BaseException, where: str, *, may_open: bool) -> BrokerError:
    """One line for a failed broker operation: the cause when one is found, else SQLite's words."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if where.startswith("postgres"):
        return BrokerError(f"broker error at {where}: {text}")
    fault = explain(Path(where), str(exc), may_open=may_open)
    return BrokerError(f"broker error at {where}: {fault.detail if fault else text}")


def _header_wrong(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False  # let the connection report it
    return bool(head) and head != SQLITE_HEADER


def before_open(path: Path, *, may_open: bool = True) -> Fault | None:
    """A reason the broker at ``path`` cannot be used at all, found without using it.

    A missing file is not a fault here: opening creates it (``weft init``).
    ``may_open`` False: this process holds connections, so the broker's files
    are only looked at, never opened.
    """
    weft_dir = path.parent
    if not weft_dir.is_dir():
        return Fault("missing", f"the project directory {weft_dir} is missing "
                     "(was it deleted? 'weft init' makes a new, empty one)")
    if _read_only_mount(weft_dir):
        return Fault("read-only", f"read-only: the file system holding {weft_dir} is mounted "
                     "read-only (remount it read-write; the broker file itself is not damaged)")
    for target in (path, Path(f"{path}.lock"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        if target.exists() and not os.access(target, os.R_OK | os.W_OK):
            return _unwritable(target, may_open=may_open)
    if not os.access(weft_dir, os.W_OK | os.X_OK):
        # SQLite and simplebroker create their -wal, -shm and .lock files beside the broker.
        return _unwritable(weft_dir, may_open=True)
    return None


def explain(path: Path, error_text: str, *, may_open: bool) -> Fault | None:
    """The cause of ``error_text`` (a failed broker operation on ``path``), if one is found.

    None means nothing wrong was found with the file: the caller reports the
    error text as it is, never a guess.
    """
    found = before_open(path, may_open=may_open)
    if found is not None:
        return found
    low = error_text.lower()
    if not path.exists() and ("unable to open" in low or "no such" in low):
        return Fault("missing", f"the broker file {path} is missing (was it deleted?)")
    if any(word in low for word in _LOCKED_WORDS):
        return Fault("locked", "locked: another process holds the broker file locked "
                     "(try again; if it stays locked, 'fuser -v' on the file shows who)")
    if any(word in low for word in _DAMAGE_WORDS) or "disk i/o" in low:
        return damage(path) if may_open else Fault("corrupt", _maybe_damaged(path, error_text))
    return None


def damage(path: Path) -> Fault | None:
    """A Fault if the file really is damaged: wrong header or SQLite's quick check fails.

    Opens the file read-only: call only while this process holds no
    connection to it.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError:
        return None
    if head and head != SQLITE_HEADER:
        return Fault("corrupt", _corrupt(path, "it is not a SQLite database"))
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            rows = con.execute("PRAGMA quick_check(1)").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        text = str(exc).lower()
        if any(word in text for word in _DAMAGE_WORDS):
            return Fault("corrupt", _corrupt(path, str(exc)))
        return None  # locked, or unreadable for another reason: not damage
    if rows and rows[0][0] != "ok":
        return Fault("corrupt", _corrupt(path, f"SQLite's integrity check says: {rows[0][0]}"))
    return None


def _corrupt(path: Path, why: str) -> str:
    why = " ".join(why.replace("*", "").split())  # SQLite's report spans lines
    return (f"the broker file is corrupt ({why}); restore {path} from a backup, "
            "or move it aside to start an empty broker (its messages are then lost)")


def _maybe_damaged(path: Path, error_text: str) -> str:
    first = error_text.strip().splitlines()[0] if error_text.strip() else "an error"
    return (f"SQLite reports '{first}': the broker file may be damaged; check it with "
            f"sqlite3 {path} 'PRAGMA integrity_check' before restoring a backup")


def _read_only_mount(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _unwritable(target: Path, *, may_open: bool) -> Fault:
    """Why ``target`` (a file or the .weft directory) cannot be written: attribute or mode."""
    flags = _chattr_flags(target) if may_open or target.is_dir() else 0
    if flags & (_FS_IMMUTABLE_FL | _FS_APPEND_FL):
        which, flag = ("immutable", "i") if flags & _FS_IMMUTABLE_FL else ("append-only", "a")
        return Fault("read-only", f"read-only: {target} is marked {which} "
                     f"('chattr -{flag} {target}' allows writes; the broker file is not damaged)")
    if os.geteuid() == 0:
        return Fault("read-only", f"read-only: {target} cannot be written even by root "
                     "(an immutable attribute? see lsattr; the broker file is not damaged)")
    try:
        st = target.stat()
    except OSError as exc:
        return Fault("permission", f"permission denied: cannot inspect {target}: {exc.strerror}")
    return Fault("permission", f"permission denied: user {os.geteuid()} cannot read and write "
                 f"{target} (owner uid {st.st_uid}, mode {st.st_mode & 0o7777:o}; "
                 "the broker file itself is not damaged)")


def _chattr_flags(target: Path) -> int:
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        raw = fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("l", 0))
        return int(struct.unpack("l", raw)[0])
    except OSError as exc:
        if exc.errno not in (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        return 0
    finally:
        os.close(fd)
