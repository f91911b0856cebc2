"""Trust rules a manager enforces before a task runs: the function allow-list and
secrets by reference (docs/security.md)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from jobs_module import write_jobs

from weft.runtime import allowlist
from weft.runtime.secret_refs import SecretError, SecretStore

SECRET = "s3cr3t-Value-7f1c9a"


def test_allow_list_entries():
    entries = allowlist.parse(" mypkg., tasks , jobs:square ")
    assert entries == ("mypkg.", "tasks", "jobs:square")
    assert allowlist.allowed("mypkg.jobs:run", entries)
    assert allowlist.allowed("mypkg:run", entries)
    assert allowlist.allowed("tasks:run", entries)
    assert not allowlist.allowed("tasks.sub:run", entries)
    assert allowlist.allowed("jobs:square", entries) and not allowlist.allowed("jobs:cube", entries)
    assert not allowlist.allowed("mypkgevil:run", entries)
    assert allowlist.parse("") is None and allowlist.refusal("os:system", None) is None
    assert "WEFT_FUNCTION_ALLOW" in allowlist.refusal("os:system", entries)


@pytest.fixture
def allow_manager(project, client, monkeypatch):
    monkeypatch.setenv("WEFT_FUNCTION_ALLOW", "pkg.")
    write_jobs(project.root)
    info = client.workers.start()
    project.track(info.pid)
    return info


def test_allow_list_rejects_before_anything_runs(project, allow_manager):
    marker = project.root / "ran"
    proc = project.cli("run", "--function", "os:system", "--arg", f"touch {marker}")
    assert proc.returncode == 2, proc.stderr
    assert "os:system" in proc.stderr and "WEFT_FUNCTION_ALLOW" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()
    rejected = [e for e in project.events() if e.get("event") == "task_rejected"]
    assert rejected and rejected[-1]["reason"] == "not_allowed"
    # The attribute path may not leave the allowed modules through a module object.
    sneaky = project.cli("run", "--function", "pkg.jobs:os.getpid")
    assert sneaky.returncode != 0 and "not allowed" in sneaky.stderr, sneaky.stderr
    ok = project.cli("run", "--function", "pkg.jobs:square", "--arg", "7", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["value"] == 49


def test_secret_store_reads_owner_only_file(tmp_path):
    path = tmp_path / "secrets"
    path.write_text("# comment\nAPI_KEY='abc=def'\nexport OTHER=2\n")
    path.chmod(0o600)
    store = SecretStore(path, explicit=True, environ={"FROM_ENV": "e"})
    assert store.resolve(["API_KEY", "OTHER", "FROM_ENV"]) == {
        "API_KEY": "abc=def", "OTHER": "2", "FROM_ENV": "e"}
    with pytest.raises(SecretError, match="MISSING"):
        store.resolve(["MISSING"])
    path.chmod(0o640)
    with pytest.raises(SecretError, match="chmod 600"):
        store.resolve(["API_KEY"])
    link = tmp_path / "link"
    path.chmod(0o600)
    link.symlink_to(path)
    with pytest.raises(SecretError, match="symlink"):
        SecretStore(link, explicit=True, environ={}).resolve(["API_KEY"])


def test_secret_sources_for_a_manager(tmp_path):
    default = SecretStore.for_manager(tmp_path, None)
    assert default.path == tmp_path / "secrets" and default.resolve([]) == {}
    with pytest.raises(SecretError, match="manager's environment"):
        SecretStore(tmp_path / "secrets", explicit=False, environ={}).resolve(["X"])
    with pytest.raises(SecretError, match="does not exist"):
        SecretStore.for_manager(tmp_path, str(tmp_path / "nope")).resolve(["X"])


def _broker_bytes(root: Path) -> list[tuple[Path, bytes]]:
    weft_dir = root / ".weft"
    files = [weft_dir / n for n in ("broker.db", "broker.db-wal", "broker.db-shm")]
    blobs = weft_dir / "blobs"
    if blobs.exists():
        files += [p for p in blobs.rglob("*") if p.is_file()]
    return [(p, p.read_bytes()) for p in files if p.exists()]


def test_secret_reaches_the_task_and_never_the_broker(project, manager):
    secrets = project.root / ".weft" / "secrets"
    fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, f"API_TOKEN={SECRET}\n".encode())
    os.close(fd)
    # The task proves it got the value by its digest: the value must not be in the command.
    digest = "import hashlib, os; print(hashlib.sha256(os.environ['API_TOKEN'].encode()).hexdigest())"
    proc = project.cli("run", "--secret", "API_TOKEN", "--", sys.executable, "-c", digest)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == hashlib.sha256(SECRET.encode()).hexdigest()
    files = _broker_bytes(project.root)
    assert any(p.name == "broker.db" for p, _ in files)
    assert any(b"API_TOKEN" in data for _, data in files)  # the name travels ...
    leaks = [str(p) for p, data in files if SECRET.encode() in data]
    assert leaks == []  # ... the value never does


def test_missing_secret_is_refused_with_the_reason(project, manager):
    proc = project.cli("run", "--secret", "NOT_DEFINED_ANYWHERE", "--", "true")
    assert proc.returncode == 2, proc.stderr
    assert "NOT_DEFINED_ANYWHERE" in proc.stderr and "Traceback" not in proc.stderr


def test_secret_names_are_checked_before_queueing(project):
    proc = project.cli("run", "--secret", "BAD-NAME", "--", "true")
    assert proc.returncode == 2 and "secret" in proc.stderr, proc.stderr
    assert not (project.root / ".weft" / "broker.db").exists() or not project.rows(
        "weft.spawn.requests")


def test_api_accepts_secrets():
    from weft.client.specs import build_spec
    from weft.errors import InvalidSpec

    assert build_spec(command=["true"], secrets=["API_TOKEN"]).secrets == ("API_TOKEN",)
    with pytest.raises(InvalidSpec, match="secret"):
        build_spec(command=["true"], secrets=["NOT OK"])


def test_security_doc_states_the_model_and_is_linked():
    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "security.md").read_text()
    for words in ("one trust domain", "forge another task's result", "WEFT_FUNCTION_ALLOW",
                  "pickle", "--env` is stored in clear", "--secret NAME", "GRANT USAGE ON SCHEMA",
                  "subreaper", "--metrics-auth-file"):
        assert words in doc, words
    readme = (root / "README.md").read_text()
    first_block_end = readme.index("```", readme.index("```sh") + 5)
    assert "docs/security.md" in readme[first_block_end:]
