"""Graceful shutdown of managers (signals, STOP, grace) and Ctrl-C on ``weft run``."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
from conftest import pid_alive, running_status, wait_for


def _stopped_event(project, mgr_tid):
    return next((e for e in project.events(mgr_tid) if e["event"] == "manager_stopped"), None)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_running_tasks_and_claims_nothing_new(project, client, sig):
    mgr = client.workers.start(grace=30)
    project.track(mgr.pid)
    client.auto_start = False
    task = client.submit(command=["sh", "-c", "sleep 1; echo finished"])
    wait_for(lambda: running_status(task), what="task running")
    os.kill(mgr.pid, sig)
    wait_for(lambda: task.client.task(mgr.tid).control("STATUS")["details"]["draining"],
             what="manager draining")
    late = client.submit(command=["true"])
    result = task.wait(timeout=20)
    assert result.status == "completed" and result.stdout == "finished\n"
    event = wait_for(lambda: _stopped_event(project, mgr.tid), what="manager_stopped")
    assert event["reason"] == f"signal {sig.name}"
    assert event["details"]["drained"] == {task.tid: "completed"}
    wait_for(lambda: not pid_alive(mgr.pid), what="manager exit")
    assert project.registry()[mgr.tid]["status"] == "stopped"
    assert [r["taskspec"]["command"] for r in project.rows("weft.spawn.requests")] == [["true"]]
    assert not late.done()


def test_grace_runs_out_then_tasks_are_stopped_and_recorded(project, client):
    mgr = client.workers.start(grace=0.5)
    project.track(mgr.pid)
    task = client.submit(command=["sleep", "30"])
    wait_for(lambda: running_status(task), what="task running")
    stop = project.cli("worker", "stop", mgr.tid, "--timeout", "20")
    assert stop.returncode == 0, stop.stderr
    result = task.wait(timeout=10)
    assert result.status == "cancelled"
    event = _stopped_event(project, mgr.tid)
    assert event["details"]["drained"] == {task.tid: "cancelled"}


def test_second_sigint_kills_what_is_left(project, client):
    mgr = client.workers.start(grace=30)
    project.track(mgr.pid)
    task = client.submit(command=["sh", "-c", "trap '' TERM; sleep 30"])
    wait_for(lambda: running_status(task), what="task running")
    os.kill(mgr.pid, signal.SIGINT)
    wait_for(lambda: task.control("STATUS")["ok"], what="manager still serving while draining")
    os.kill(mgr.pid, signal.SIGINT)
    result = task.wait(timeout=15)
    assert result.status == "killed"
    wait_for(lambda: not pid_alive(mgr.pid), what="manager exit")
    assert _stopped_event(project, mgr.tid)["details"]["drained"] == {task.tid: "killed"}


class _Lines:
    """Collect a subprocess's stderr lines on a thread, so a test can wait on one."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream):
        for line in stream:
            self.lines.append(line)

    def has(self, text):
        return any(text in line for line in self.lines)

    def join(self):
        self._thread.join(timeout=10)


def test_ctrl_c_on_weft_run_stops_the_task(project, manager):
    with project.popen("run", "--name", "ctrlc", "--", "sh", "-c", "echo ready; sleep 30") as run:
        err = _Lines(run.stderr)
        assert run.stdout.readline() == "ready\n"  # weft run is following the task now
        tid = _task_tid(project, "ctrlc")
        run.send_signal(signal.SIGINT)
        out = run.stdout.read()
        run.wait(timeout=20)
        err.join()
    assert run.returncode == 143, err.lines
    assert err.has("stopping the task")
    assert out == ""  # the output is not replayed after the interruption
    status = json.loads(project.cli("task", "status", tid, "--json").stdout)
    assert status["status"] == "cancelled"


def test_second_ctrl_c_detaches_and_prints_the_tid(project, manager):
    with project.popen("run", "--name", "stubborn", "--", "sh", "-c",
                       "trap '' TERM; echo ready; while :; do sleep 0.1; done") as run:
        err = _Lines(run.stderr)
        assert run.stdout.readline() == "ready\n"
        tid = _task_tid(project, "stubborn")
        run.send_signal(signal.SIGINT)
        wait_for(lambda: err.has("stopping the task"), what="first Ctrl-C handled")
        run.send_signal(signal.SIGINT)
        run.stdout.read()
        run.wait(timeout=20)
        err.join()
    assert run.returncode == 130
    assert err.has("detached") and err.has(tid)
    project.cli("task", "kill", tid)


def _task_tid(project, name):
    for event in project.events():
        if event.get("event") == "task_started" and event.get("name") == name:
            return event["tid"]
    return None
