"""Secrets by reference: the task names a variable, the manager supplies its value.

``weft run --secret NAME`` (API: ``secrets=["NAME"]``) puts only the *name*
in the spawn request. The manager that launches the task looks the value up
and hands it to the task's process over the launcher's socket, so the value
is never written to the broker (queues, events, WAL or blobs), where any
task of the project, a backup or another host could read it.

Where a manager looks, first match wins:

1. the secrets file given at ``weft worker start --secrets-file PATH``, or
   else ``.weft/secrets`` when it exists: ``NAME=value`` lines (``#``
   comments and blank lines ignored). The file must be a regular file owned
   by this user and readable by nobody else (mode 0600 or stricter); it is
   read again for every task, so a rotated value needs no restart;
2. the manager's own environment. (Tasks inherit that environment too, so
   a secret kept there reaches every task; see docs/security.md.)

A name no manager source has, or a file that fails the checks, fails the
request before anything runs, with the reason.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

FILE_NAME = "secrets"


class SecretError(Exception):
    """A secret cannot be supplied; the message says which and why."""


class SecretStore:
    def __init__(self, path: Path | None, *, explicit: bool,
                 environ: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.explicit = explicit  # a file named at start-up must exist
        self.environ = os.environ if environ is None else environ

    @classmethod
    def for_manager(cls, weft_dir: Path, secrets_file: str | None) -> SecretStore:
        if secrets_file:
            return cls(Path(secrets_file).expanduser(), explicit=True)
        return cls(weft_dir / FILE_NAME, explicit=False)

    def resolve(self, names: tuple[str, ...] | list[str]) -> dict[str, str]:
        """The value of every name; SecretError names the first that cannot be had."""
        if not names:
            return {}
        from_file = self._read_file()
        values: dict[str, str] = {}
        for name in names:
            if name in from_file:
                values[name] = from_file[name]
            elif name in self.environ:
                values[name] = self.environ[name]
            else:
                where = f"{self.path} or " if self.path is not None else ""
                raise SecretError(f"secret {name!r} is not in {where}the manager's environment")
        return values

    def _read_file(self) -> dict[str, str]:
        if self.path is None:
            return {}
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if self.explicit:
                raise SecretError(f"secrets file {self.path} does not exist") from None
            return {}
        except OSError as exc:
            raise SecretError(f"cannot open secrets file {self.path}: "
                              f"{exc.strerror or exc} (symlinks are refused)") from None
        with os.fdopen(fd, "r", encoding="utf-8") as fh:
            info = os.fstat(fh.fileno())
            problem = _unsafe(info)
            if problem:
                raise SecretError(f"secrets file {self.path} {problem}")
            return parse(fh.read())


def _unsafe(info: os.stat_result) -> str | None:
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_uid != os.getuid():
        return "is not owned by this user"
    if info.st_mode & 0o077:
        return f"is readable or writable by others (mode {stat.S_IMODE(info.st_mode):04o}; chmod 600 it)"
    return None


def parse(text: str) -> dict[str, str]:
    """``NAME=value`` lines; the value is everything after the first ``=``, unquoted."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        name = name.strip()
        if name.startswith("export "):
            name = name[len("export "):].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values
