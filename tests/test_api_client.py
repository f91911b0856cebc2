"""WeftClient itself: finding or creating the project, releasing the broker,
and the public surface of the package (names, lazy import, types)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT

import weft
from weft import ContextError, WeftClient, WeftError


def _open_broker_files(root: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(root / ".weft" / "broker.db")):
            found.append(target)
    return found


def test_creates_a_project_like_weft_run(project):
    assert not (project.root / ".weft").exists()
    with WeftClient() as client:
        assert client.context.root == project.root
        assert (project.root / ".weft").is_dir()
        assert oct((project.root / ".weft").stat().st_mode & 0o777) == "0o700"


def test_finds_the_project_from_a_subdirectory(project, monkeypatch):
    WeftClient().close()
    deep = project.root / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    with WeftClient() as client:
        assert client.context.root == project.root
    assert not (deep / ".weft").exists()


def test_path_and_weft_context(project, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    with WeftClient(other) as client:
        assert client.context.root == other
    monkeypatch.setenv("WEFT_CONTEXT", str(other))
    with WeftClient() as client:
        assert client.context.root == other
    assert not (project.root / ".weft").exists()


def test_create_false_needs_a_project(project):
    with pytest.raises(ContextError, match="weft init"):
        WeftClient(create=False)
    assert not (project.root / ".weft").exists()


def test_context_manager_releases_the_broker(project):
    with WeftClient() as client:
        client.overview()  # opens the broker
        assert _open_broker_files(project.root)
    assert _open_broker_files(project.root) == []
    # A handle keeps working after close: it reconnects on use.
    assert client.tasks() == []
    client.close()
    assert _open_broker_files(project.root) == []


def test_queues_for_operators(project):
    with WeftClient() as client:
        first = client.queues.write("weft.scratch", "one")
        client.queues.write("weft.scratch", "two")
        assert client.queues.peek("weft.scratch") == [("one", first)]
        assert [b for b, _ in client.queues.peek("weft.scratch", limit=None)] == ["one", "two"]
        assert ("weft.scratch", 2, 2) in client.queues.stats()
        assert client.queues.move("weft.scratch", "weft.other", message_id=first) == ("one", first)
        assert client.queues.read("weft.other") == ("one", first)
        assert client.queues.clear("weft.scratch") == 1
        assert client.queues.peek("weft.scratch", limit=None) == []


# -- the package surface ---------------------------------------------------------
def test_every_public_name_resolves_and_errors_share_a_base():
    assert len(weft.__all__) == len(set(weft.__all__))
    for name in weft.__all__:
        assert getattr(weft, name) is not None, name
    errors = [getattr(weft, n) for n in weft.__all__
              if isinstance(getattr(weft, n), type) and issubclass(getattr(weft, n), Exception)]
    assert len(errors) >= 10 and all(issubclass(e, WeftError) for e in errors)
    for name in ("WeftClient", "TaskSpec", "Result", "Task", "TaskFailed", "current_task"):
        assert name in weft.__all__
    with pytest.raises(AttributeError):
        weft.NotAThing  # noqa: B018


def test_import_weft_is_lazy():
    code = "import sys, weft; print(sorted(m for m in ('pydantic', 'simplebroker') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_py_typed_is_shipped():
    assert (ROOT / "weft" / "py.typed").exists()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["weft"]


USAGE = '''
from weft import Result, Task, WeftClient

def use(client: WeftClient) -> None:
    task: Task = client.submit(command=["true"], timeout=3, resources={"cpus": 1}, retries=2)
    result: Result = task.result(timeout=5)
    code: int | None = result.exit_code
    wrong: int = client.submit(function="pkg.mod:fn")
    client.submit(command=["true"], colour="blue")
'''


def _mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (pip install '.[test]')")
def test_mypy_passes_and_sees_the_public_types(tmp_path):
    package = _mypy(cwd=ROOT)  # configured in pyproject.toml, as the README runs it
    assert package.returncode == 0, package.stdout + package.stderr
    assert "Success" in package.stdout
    usage = tmp_path / "usage.py"
    usage.write_text(USAGE)
    proc = _mypy("--config-file", str(ROOT / "pyproject.toml"), str(usage), cwd=ROOT)
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    # Exactly the two deliberate mistakes: the types flow through `from weft import ...`.
    assert len(errors) == 2, proc.stdout
    assert "usage.py:8" in errors[0] and '"Task"' in errors[0]
    assert "usage.py:9" in errors[1] and "colour" in errors[1]
