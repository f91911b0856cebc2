"""The control channel: every command, on tasks and on managers, via the CLI."""

from __future__ import annotations

import json
import os
import signal

from conftest import pid_alive, wait_for


def _status(project, tid):
    proc = project.cli("task", "status", tid, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _start_sleeper(project, seconds="300", name="sleeper"):
    proc = project.cli("run", "--no-wait", "--name", name, "--", "sleep", seconds)
    assert proc.returncode == 0, proc.stderr
    tid = proc.stdout.strip()
    reply = wait_for(lambda: (r := _status(project, tid)) and r["status"] == "running" and r,
                     what="task running")
    return tid, reply["pid"]


def test_ping_manager_prints_pong(project, manager):
    proc = project.cli("task", "ping", manager.tid)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("PONG ")
    short = project.cli("task", "ping", manager.tid[-10:], "--json")
    reply = json.loads(short.stdout)
    assert reply["reply"] == "PONG" and reply["tid"] == manager.tid and reply["rtt_ms"] >= 0


def test_manager_status_reply(project, manager):
    reply = _status(project, manager.tid)
    assert reply["ok"] is True
    assert reply["pid"] == manager.pid
    assert reply["details"]["role"] == "manager"


def test_task_status_has_pid_and_stop_cancels(project, manager):
    tid, pid = _start_sleeper(project)
    assert pid_alive(pid)
    ping = project.cli("task", "ping", tid)
    assert ping.stdout.startswith("PONG ")
    stop = project.cli("task", "stop", tid)
    assert stop.returncode == 0, stop.stderr
    result = json.loads(project.cli("result", tid, "--json", "--timeout", "20").stdout)
    assert result["status"] == "cancelled"
    wait_for(lambda: not pid_alive(pid), what="task process gone")
    again = project.cli("task", "stop", tid, "--json")
    assert json.loads(again.stdout)["reply"] == "already cancelled"


def test_kill_kills_whole_tree(project, manager):
    proc = project.cli("run", "--no-wait", "--", "sh", "-c", "sleep 300 & sleep 300; wait")
    tid = proc.stdout.strip()
    reply = wait_for(lambda: (r := _status(project, tid)) and r["status"] == "running" and r,
                     what="running")
    pid = reply["pid"]
    kill = project.cli("task", "kill", tid)
    assert kill.returncode == 0
    result = json.loads(project.cli("result", tid, "--json", "--timeout", "20").stdout)
    assert result["status"] == "killed" and result["exit_code"] == 137
    # Nothing of the task's process group survives.
    wait_for(lambda: not _group_alive(pid), what="process group gone")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def _proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def test_pause_and_resume_task(project, manager):
    tid, pid = _start_sleeper(project)
    assert project.cli("task", "pause", tid).stdout.strip() == "paused"
    wait_for(lambda: _proc_state(pid) == "T", what="stopped process")
    assert _status(project, tid)["status"] == "paused"
    assert project.cli("task", "resume", tid).stdout.strip() == "resumed"
    wait_for(lambda: _proc_state(pid) in ("S", "R"), what="resumed process")
    assert _status(project, tid)["status"] == "running"
    project.cli("task", "kill", tid)


def test_pause_manager_stops_claiming(project, manager):
    assert project.cli("task", "pause", manager.tid).returncode == 0
    tid = project.cli("run", "--no-wait", "true").stdout.strip()
    res = project.cli("result", tid, "--timeout", "1")
    assert res.returncode == 5  # still queued: the paused manager does not claim
    assert project.cli("task", "resume", manager.tid).returncode == 0
    assert project.cli("result", tid, "--timeout", "20").returncode == 0


def test_malformed_and_unknown_commands_get_error_replies(project, manager):
    ctrl_in, ctrl_out = f"T{manager.tid}.ctrl_in", f"T{manager.tid}.ctrl_out"
    project.cli("queue", "write", ctrl_in, "{not json")
    project.cli("queue", "write", ctrl_in, json.dumps({"command": "DANCE", "request_id": "r2"}))
    project.cli("queue", "write", ctrl_in, json.dumps({"command": "PING", "colour": 1}))

    def replies():
        rows = project.rows(ctrl_out)
        return rows if len(rows) >= 3 else None

    rows = wait_for(replies, what="three error replies")
    assert all(r["ok"] is False and r["error"] for r in rows)
    assert rows[1]["request_id"] == "r2" and "DANCE" in rows[1]["error"]
    assert project.cli("task", "ping", manager.tid).stdout.startswith("PONG ")


def test_stop_of_finished_task_is_answered_not_reapplied(project, manager):
    tid = project.cli("run", "--no-wait", "true").stdout.strip()
    assert project.cli("result", tid, "--timeout", "20").returncode == 0
    reply = json.loads(project.cli("task", "kill", tid, "--json").stdout)
    assert reply["status"] == "completed"
    assert reply["reply"] == "already completed"


def test_sigterm_to_manager_writes_stopped(project, manager):
    os.kill(manager.pid, signal.SIGTERM)
    wait_for(lambda: project.registry()[manager.tid]["status"] == "stopped", what="stopped record")
    wait_for(lambda: not pid_alive(manager.pid), what="manager exit")


def test_queued_task_answers_from_the_queue_and_stop_cancels_it(project, manager):
    assert project.cli("task", "pause", manager.tid).returncode == 0
    tid = project.cli("run", "--no-wait", "--", "sh", "-c", "echo never").stdout.strip()
    ping = json.loads(project.cli("task", "ping", tid, "--json").stdout)
    assert ping["reply"] is None and ping["alive"] is False and ping["status"] == "queued"
    stop = json.loads(project.cli("task", "stop", tid, "--json").stdout)
    assert stop["status"] == "cancelled"
    assert project.cli("task", "resume", manager.tid).returncode == 0
    result = json.loads(project.cli("result", tid, "--json", "--timeout", "10").stdout)
    assert result["status"] == "cancelled" and result["stdout"] == ""
    assert project.rows("weft.spawn.requests") == []
    assert not any(e["event"] == "task_started" for e in project.events(tid))
