"""``weft worker start|stop|list|status`` and the manager's own lifecycle."""

from __future__ import annotations

import json
import time

from conftest import pid_alive, wait_for


def test_start_list_status_stop(project):
    start = project.cli("worker", "start", "--max-concurrency", "3", "--name", "w1")
    assert start.returncode == 0, start.stderr
    tid = start.stdout.strip()
    record = project.registry()[tid]
    project.track(record["pid"])
    assert record["status"] == "active" and pid_alive(record["pid"])
    assert record["capabilities"]["max_concurrency"] == 3
    listing = json.loads(project.cli("worker", "list", "--json").stdout)
    assert [w["tid"] for w in listing] == [tid]
    assert {"tid", "status", "pid", "host", "queues"} <= set(listing[0])
    status = json.loads(project.cli("worker", "status", tid[-10:], "--json").stdout)
    assert status["tid"] == tid and status["name"] == "w1"
    text = project.cli("worker", "status", tid)
    assert str(record["pid"]) in text.stdout and "heartbeat" in text.stdout
    stop = project.cli("worker", "stop", "--all")
    assert stop.returncode == 0, stop.stderr
    assert not pid_alive(record["pid"])
    assert project.registry()[tid]["status"] == "stopped"
    assert json.loads(project.cli("worker", "list", "--json").stdout) == []
    everything = json.loads(project.cli("worker", "list", "--all", "--json").stdout)
    assert everything[0]["status"] == "stopped"


def test_force_stop_kills_process_group(project):
    tid = project.cli("worker", "start").stdout.strip()
    record = project.registry()[tid]
    launcher = record["launcher_pid"]
    stop = project.cli("worker", "stop", tid, "--force")
    assert stop.returncode == 0, stop.stderr
    assert not pid_alive(record["pid"]) and not pid_alive(launcher)
    newest = project.registry()[tid]
    assert newest["status"] == "stopped" and "force" in newest["stop_reason"]


def test_idle_timeout_exits_and_reaps(project):
    start = project.cli("worker", "start", "--idle-timeout", "1")
    tid = start.stdout.strip()
    pid = project.registry()[tid]["pid"]
    wait_for(lambda: project.registry()[tid]["status"] == "stopped", timeout=15,
             what="idle manager to stop")
    wait_for(lambda: not pid_alive(pid), what="manager process exit")
    assert project.registry()[tid]["stop_reason"] == "idle_timeout"


def test_idle_timeout_from_environment(project):
    start = project.cli("worker", "start", env={"WEFT_MANAGER_IDLE_TIMEOUT": "1"})
    tid = start.stdout.strip()
    wait_for(lambda: project.registry()[tid]["status"] == "stopped", timeout=15,
             what="idle manager to stop")


def test_idle_timeout_waits_for_running_children(project):
    tid = project.cli("worker", "start", "--idle-timeout", "1").stdout.strip()
    started = time.monotonic()
    run = project.cli("run", "--", "sh", "-c", "sleep 2; echo finished")
    assert run.stdout == "finished\n"
    assert time.monotonic() - started >= 2
    wait_for(lambda: project.registry()[tid]["status"] == "stopped", timeout=15,
             what="manager to stop after its child")


def test_stop_waits_for_running_child_then_stopped(project, manager):
    proc = project.cli("run", "--no-wait", "--", "sh", "-c", "sleep 1; echo ok")
    tid = proc.stdout.strip()
    wait_for(lambda: any(e["event"] == "task_started" for e in project.events(tid)),
             what="child started")
    stop = project.cli("worker", "stop", manager.tid)
    assert stop.returncode == 0, stop.stderr
    result = json.loads(project.cli("result", tid, "--json").stdout)
    assert result["status"] == "completed" and result["stdout"] == "ok\n"


def test_worker_stop_without_target_is_usage_error(project):
    proc = project.cli("worker", "stop")
    assert proc.returncode == 2
    assert "--all" in proc.stderr


def test_foreground_manager_runs_until_stopped(project):
    proc = project.popen("worker", "start", "--foreground", "--idle-timeout", "0")
    try:
        record = wait_for(lambda: next(iter(project.registry().values()), None),
                          what="foreground manager record")
        assert record["pid"] == proc.pid
        assert project.cli("run", "echo", "fg").stdout == "fg\n"
        assert project.cli("worker", "stop", record["tid"]).returncode == 0
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
