"""The project context: created owner-only, found like git, or via WEFT_CONTEXT."""

from __future__ import annotations

import stat

import pytest

from weft import context
from weft.errors import ContextError


def test_init_creates_owner_only_broker(project):
    proc = project.cli("init")
    assert proc.returncode == 0, proc.stderr
    weft_dir = project.root / ".weft"
    assert stat.S_IMODE(weft_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((weft_dir / "broker.db").stat().st_mode) == 0o600
    again = project.cli("init")
    assert again.returncode == 0 and "already exists" in again.stdout


def test_found_from_a_subdirectory(project, monkeypatch):
    project.cli("init")
    deep = project.root / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert context.resolve().root == project.root


def test_missing_context_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEFT_CONTEXT", raising=False)
    with pytest.raises(ContextError) as err:
        context.resolve()
    assert "weft init" in str(err.value)


def test_status_without_project_exits_2_without_creating(project):
    proc = project.cli("status")
    assert proc.returncode == 2
    assert "weft init" in proc.stderr
    assert not (project.root / ".weft").exists()


def test_weft_context_points_elsewhere(project, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    assert project.cli("init", str(other)).returncode == 0
    proc = project.cli("queue", "list", "--json", env={"WEFT_CONTEXT": str(other)})
    assert proc.returncode == 0, proc.stderr
    assert not (project.root / ".weft").exists()
