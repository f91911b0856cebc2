"""``weft task ping`` tells the truth (issue 11, item 5).

PONG means a live process answered on ``ctrl_out`` within the timeout; a
finished task is "finished (<status>)" and exit 1, even when its outbox holds
a result and its manager is dead; a task nobody can answer for is exit 1.
"""

from __future__ import annotations

import json
import os
import signal
import time

from conftest import pid_alive, wait_for


def _status(project, tid):
    proc = project.cli("task", "status", tid, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _running_sleeper(project):
    tid = project.cli("run", "--no-wait", "--", "sleep", "300").stdout.strip()
    info = wait_for(lambda: (r := _status(project, tid)) and r["status"] == "running" and r,
                    what="task running")
    project.track(info["pid"])
    return tid, info["pid"]


def test_live_task_answers_pong_with_its_round_trip(project, manager):
    tid, pid = _running_sleeper(project)
    proc = project.cli("task", "ping", tid)
    assert proc.returncode == 0, proc.stderr
    word, ms, unit = proc.stdout.split()
    assert (word, unit) == ("PONG", "ms") and float(ms) >= 0
    reply = json.loads(project.cli("task", "ping", tid, "--json").stdout)
    assert reply["alive"] is True and reply["pid"] == pid and reply["status"] == "running"
    project.cli("task", "kill", tid)


def test_finished_task_whose_manager_died_is_finished_not_pong(project, manager):
    tid = project.cli("run", "--no-wait", "true").stdout.strip()
    assert project.cli("result", tid, "--timeout", "30").returncode == 0
    os.kill(manager.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(manager.pid), what="manager gone")
    proc = project.cli("task", "ping", tid, "--timeout", "2")
    assert proc.returncode == 1
    assert proc.stdout.strip() == "finished (completed)"
    reply = json.loads(project.cli("task", "ping", tid, "--json").stdout)
    assert reply["alive"] is False and reply["reply"] is None and reply["status"] == "completed"
    assert project.rows(f"T{tid}.ctrl_in") == []  # our PINGs were taken back


def test_running_task_with_nobody_to_answer_is_exit_1(project, manager):
    tid, pid = _running_sleeper(project)
    launcher = project.registry()[manager.tid]["launcher_pid"]
    # Manager and launcher both gone: the task's process lives on, but no
    # process reads its control queue, so nothing can honestly say PONG.
    os.kill(manager.pid, signal.SIGKILL)
    os.kill(launcher, signal.SIGKILL)
    wait_for(lambda: not pid_alive(manager.pid) and not pid_alive(launcher), what="both gone")
    started = time.monotonic()
    proc = project.cli("task", "ping", tid, "--timeout", "1.5")
    assert proc.returncode == 1, proc.stdout
    assert "PONG" not in proc.stdout
    assert "no reply" in proc.stderr and "running" in proc.stderr
    assert time.monotonic() - started < 20
    assert project.rows(f"T{tid}.ctrl_in") == []
    os.killpg(pid, signal.SIGKILL)


def test_queued_task_is_not_pong(project, manager):
    assert project.cli("task", "pause", manager.tid).returncode == 0
    tid = project.cli("run", "--no-wait", "true").stdout.strip()
    proc = project.cli("task", "ping", tid)
    assert proc.returncode == 1
    assert proc.stdout.strip() == "queued (no process yet)"
