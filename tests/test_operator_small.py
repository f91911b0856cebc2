"""Small things a new user hit (issue 14): each refusal is one line and the
right exit code, nothing is queued by a refused submit, and read-only
commands return at once even with a manager running."""

from __future__ import annotations

import json
import time

import pytest
from conftest import wait_for


def _one_line(proc, code):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def inited(project):
    assert project.cli("init").returncode == 0
    return project


def test_bogus_log_level_is_one_line(inited):
    line = _one_line(inited.cli("run", "true", env={"WEFT_LOG_LEVEL": "bogus"}), 2)
    assert "WEFT_LOG_LEVEL" in line and "DEBUG" in line
    assert inited.rows("weft.spawn.requests") == []


@pytest.mark.parametrize(("args", "needle"), [
    (["--cwd", "/nonexistent-weft-dir"], "cwd"),
    (["--timeout", "nan"], "timeout"),
    (["--timeout", "inf"], "timeout"),
])
def test_refused_at_submit(inited, args, needle):
    line = _one_line(inited.cli("run", *args, "--", "true"), 2)
    assert needle in line
    assert inited.rows("weft.spawn.requests") == []
    assert inited.registry() == {}  # no manager was started for it


def test_api_refuses_missing_cwd(client):
    from weft.errors import InvalidSpec

    with pytest.raises(InvalidSpec, match="cwd"):
        client.submit(command=["true"], cwd="/nonexistent-weft-dir")


def test_missing_function_module_is_one_line_exit_2(inited):
    project = inited
    proc = project.cli("run", "--function", "nosuchmod_weft:fn")
    line = _one_line(proc, 2)
    assert "nosuchmod_weft" in line
    proc = project.cli("run", "--function", "os:no_such_fn_weft")
    assert "no_such_fn_weft" in _one_line(proc, 2)


def test_gpu_ids_refused_at_once(inited):
    started = time.monotonic()
    proc = inited.cli("worker", "start", "--gpu-ids", "7",
                      env={"WEFT_GPU_SIMULATE": json.dumps([{"memory_mb": 1000}])})
    line = _one_line(proc, 2)
    assert "[7]" in line and "[0]" in line
    assert time.monotonic() - started < 5
    assert inited.registry() == {}


def test_pause_of_queued_task_refused(inited):
    tid = inited.cli("run", "--no-wait", "--delay", "60", "--", "true").stdout.strip()
    line = _one_line(inited.cli("task", "pause", tid), 2)
    assert "hold" in line
    assert [r["taskspec"]["command"] for r in inited.rows("weft.spawn.requests")] == [["true"]]


def test_parent_project_is_announced_once(inited):
    sub = inited.root / "sub"
    sub.mkdir()
    proc = inited.cli("queue", "list", cwd=sub)
    assert proc.returncode == 0
    assert proc.stderr.strip() == f"weft: using project {inited.root}"
    assert inited.cli("queue", "list").stderr == ""  # not in the project's own directory


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(project, shell):
    proc = project.cli("completion", shell)
    assert proc.returncode == 0 and "_WEFT_COMPLETE" in proc.stdout


def test_json_on_init_and_queue_verbs(project):
    out = json.loads(project.cli("init", "--json").stdout)
    assert out["created"] is True and out["backend"] == "sqlite"
    wrote = json.loads(project.cli("queue", "write", "q1", "hello", "--json").stdout)
    moved = json.loads(project.cli("queue", "move", "q1", "q2", "--json").stdout)
    assert moved == {"source": "q1", "dest": "q2", "moved": 1, "id": wrote["id"]}
    deleted = json.loads(project.cli("queue", "delete", "q2", "--id", wrote["id"], "--json").stdout)
    assert deleted == {"queue": "q2", "deleted": 1}


def test_tidy_dry_run_says_would(inited):
    proc = inited.cli("tidy", "--dry-run")
    assert proc.returncode == 0 and proc.stdout.startswith("would drop ")
    report = json.loads(inited.cli("tidy", "--dry-run", "--json").stdout)
    assert report["dry_run"] is True and "tasks_to_drop" in report


def test_ping_json_has_round_trip(project, cli_manager):
    proc = project.cli("task", "ping", cli_manager["tid"], "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["rtt_ms"] > 0
    assert "round trip" in project.cli("task", "ping", "--help").stdout


def test_read_only_commands_return_at_once(project, cli_manager):
    """With a live manager these once took 5.3 s (a 5 s wait closing the broker)."""
    wait_for(lambda: project.registry(), what="the manager's record")
    for args in (["worker", "list"], ["worker", "status"], ["queue", "list"], ["status"],
                 ["task", "list"]):
        started = time.monotonic()
        proc = project.cli(*args)
        elapsed = time.monotonic() - started
        assert proc.returncode == 0, proc.stderr
        assert elapsed < 2.5, (args, elapsed)  # warm it is ~0.2 s; 5 s meant the stall


def test_submit_record_goes_with_its_request_in_one_transaction(client):
    """Request and record are inserted together, the record's id right after
    the request's (both drawn inside the transaction, so no writer can take
    one in between); a failed insert leaves neither."""
    from weft.client.submitted import queue_request, submit_event
    from weft.errors import BrokerError

    broker = client.broker
    tid = queue_request(broker, {"v": 1, "taskspec": {"command": ["true"]}, "attempt": 1})
    assert broker.peek_one("weft.spawn.requests", message_id=int(tid)) is not None
    assert submit_event(broker, tid)["spec"] == {"command": ["true"]}
    record_id = broker.find_ids("weft.tasks.log", f'"tid":"{tid}"')
    assert record_id == [int(tid) + 1]
    with pytest.raises(BrokerError):
        queue_request(broker, {"v": 1, "taskspec": {"command": ["x" * broker.max_message_size]}})
    assert [mid for _b, mid in broker.peek_all("weft.spawn.requests")] == [int(tid)]
