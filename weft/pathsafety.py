"""Refusing a project directory someone else could have tampered with.

Everything weft keeps lives in ``.weft/``: the broker, its config (maybe a
DSN with a password), manager logs, secrets. If that directory or anything
in it is a symlink, belongs to another user, or is writable by the group or
the world, another account could redirect what weft writes (a planted
``.weft/logs`` symlink would make the manager write its log wherever the
link points) or swap what it reads. So weft refuses such a project with one
clear line (a :class:`~weft.errors.ContextError`, exit 2) instead of
"repairing" it, and opens the files it creates with ``O_NOFOLLOW``.

The checks are ``lstat`` calls on a fixed list of names, cheap enough for
every command.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from weft.errors import ContextError

# What weft creates in .weft/ (directories end with "/").
OWNED = ("broker.db", "broker.db-wal", "broker.db-shm", "broker.db-journal", "config.json",
         "manager-start.lock", "secrets", "logs/", "blobs/")
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def problem(path: Path, *, directory: bool) -> str | None:
    """Why ``path`` is unsafe for weft to use, or None (also None when it does not exist)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot inspect it: {exc.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if directory and not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if not directory and not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_uid != os.getuid():
        return f"is owned by uid {info.st_uid}, not by this user (uid {os.getuid()})"
    if info.st_mode & 0o022:
        return (f"is writable by {'others' if info.st_mode & 0o002 else 'its group'} "
                f"(mode {stat.S_IMODE(info.st_mode):04o})")
    return None


def check_path(path: Path, *, directory: bool) -> None:
    why = problem(path, directory=directory)
    if why:
        raise ContextError(f"refusing unsafe project path {path}: it {why}; "
                           "fix or remove it (see docs/security.md)")


def check_weft_dir(weft_dir: Path) -> None:
    """``.weft/`` and every entry weft creates in it, as far as they exist."""
    check_path(weft_dir, directory=True)
    for name in OWNED:
        check_path(weft_dir / name.rstrip("/"), directory=name.endswith("/"))


def open_private(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open`` that never follows a symlink and refuses a file that fails :func:`problem`."""
    try:
        fd = os.open(path, flags | NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if os.path.islink(path):
            raise ContextError(f"refusing unsafe project path {path}: it is a symbolic link") from None
        raise ContextError(f"cannot open {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if info.st_uid != os.getuid() or info.st_mode & 0o022 or not stat.S_ISREG(info.st_mode):
        os.close(fd)
        check_path(path, directory=False)  # raises with the reason
    return fd


def private_dir(path: Path) -> Path:
    """Create (0700) or accept an existing directory inside ``.weft/``, after checking it."""
    check_path(path, directory=True)
    try:
        path.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ContextError(f"cannot create {path}: {exc.strerror}") from None
    check_path(path, directory=True)
    return path
