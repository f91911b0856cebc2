"""Unsafe project paths are refused (exit 2), never followed or repaired (docs/security.md)."""

from __future__ import annotations

import os

import pytest

from weft import pathsafety
from weft.errors import ContextError


def _planted_logs(project):
    """A world-writable .weft/ whose logs entry points somewhere else, planted before init."""
    target = project.root.parent / "elsewhere"
    target.mkdir()
    weft_dir = project.root / ".weft"
    weft_dir.mkdir()
    os.chmod(weft_dir, 0o777)
    (weft_dir / "logs").symlink_to(target)
    return target


def test_planted_logs_symlink_in_world_writable_dir_is_refused(project):
    target = _planted_logs(project)
    for args in (["init"], ["run", "true"], ["worker", "start"]):
        proc = project.cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "refusing unsafe project path" in proc.stderr and "Traceback" not in proc.stderr
        assert "writable by others" in proc.stderr
    assert list(target.iterdir()) == []  # nothing was written through the link
    assert os.stat(project.root / ".weft").st_mode & 0o777 == 0o777  # refused, not "repaired"


def test_logs_symlink_in_private_dir_is_refused(project):
    target = _planted_logs(project)
    os.chmod(project.root / ".weft", 0o700)
    proc = project.cli("run", "true")
    assert proc.returncode == 2 and "logs" in proc.stderr and "symbolic link" in proc.stderr, \
        proc.stderr
    assert list(target.iterdir()) == []


def test_group_writable_broker_and_foreign_owner_are_refused(project):
    assert project.cli("init").returncode == 0
    db = project.root / ".weft" / "broker.db"
    assert db.exists()
    os.chmod(db, 0o664)
    proc = project.cli("queue", "list")
    assert proc.returncode == 2 and "broker.db" in proc.stderr and "its group" in proc.stderr, \
        proc.stderr
    os.chmod(db, 0o600)
    assert project.cli("queue", "list").returncode == 0
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    os.chown(db, 65534, 65534)
    try:
        proc = project.cli("queue", "list")
        assert proc.returncode == 2 and "not by this user" in proc.stderr, proc.stderr
    finally:
        os.chown(db, 0, 0)


def test_open_private_does_not_follow_symlinks(tmp_path):
    real = tmp_path / "real"
    real.write_text("x")
    link = tmp_path / "config.json"
    link.symlink_to(real)
    with pytest.raises(ContextError, match="symbolic link"):
        pathsafety.open_private(link, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    assert real.read_text() == "x"
    fd = pathsafety.open_private(tmp_path / "new", os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    assert os.stat(tmp_path / "new").st_mode & 0o777 == 0o600
