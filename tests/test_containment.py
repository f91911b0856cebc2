"""Containment: a task's detached descendants die with the task, however the task ends.

The task below starts a child that calls ``setsid``, forks again and
ignores SIGTERM (what daemons do), so nothing sent to the task's process
group reaches the grandchild. Each test checks by PID that it is gone.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import pid_alive, wait_for

from weft.runtime import cgroups, containment

DETACH = r'''
import os, signal, sys, time
pidfile, mode, alloc_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
child = os.fork()
if child == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(pidfile + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
        hold = b"x" * (alloc_mb << 20)
        while True:
            time.sleep(1)
    os._exit(0)
os.waitpid(child, 0)
while not os.path.exists(pidfile):
    time.sleep(0.01)
print("detached", flush=True)
if mode == "exit":
    sys.exit(0)
while True:
    time.sleep(1)
'''


def _start(project, *options: str, mode: str = "stay", alloc_mb: int = 0, wait: bool = False):
    script = project.root / "detach.py"
    script.write_text(DETACH)
    pidfile = project.root / "grandchild.pid"
    args = ["run", *options, "--", sys.executable, str(script), str(pidfile), mode, str(alloc_mb)]
    if not wait:
        args.insert(1, "--no-wait")
    proc = project.cli(*args, timeout=60)
    return proc, pidfile


def _grandchild(project, pidfile: Path) -> int:
    wait_for(pidfile.exists, what="the detached grandchild to start")
    pid = int(pidfile.read_text())
    project.track(pid)
    assert pid_alive(pid)
    return pid


def _result(project, tid: str) -> dict:
    proc = project.cli("result", tid, "--json", "--timeout", "30")
    return json.loads(proc.stdout)


def test_task_end_ends_detached_descendants(project, manager):
    proc, pidfile = _start(project, mode="exit", wait=True)
    assert proc.returncode == 0, proc.stderr
    assert "detached" in proc.stdout
    pid = int(pidfile.read_text())
    project.track(pid)
    wait_for(lambda: not pid_alive(pid), timeout=10, what="the grandchild to die with its task")


def test_timeout_ends_detached_descendants(project, manager):
    script_run, pidfile = _start(project, "--timeout", "3", wait=True)
    assert script_run.returncode == 124, script_run.stderr
    assert "detached" in script_run.stdout  # the grandchild was up before the deadline
    pid = int(pidfile.read_text())
    project.track(pid)
    wait_for(lambda: not pid_alive(pid), timeout=10, what="the grandchild to die on timeout")


@pytest.mark.parametrize("command,status", [("stop", "cancelled"), ("kill", "killed")])
def test_stop_and_kill_end_detached_descendants(project, manager, command, status):
    proc, pidfile = _start(project)
    assert proc.returncode == 0, proc.stderr
    tid = proc.stdout.strip()
    pid = _grandchild(project, pidfile)
    assert project.cli("task", command, tid).returncode == 0
    assert _result(project, tid)["status"] == status
    wait_for(lambda: not pid_alive(pid), timeout=10, what=f"the grandchild to die on {command}")


def test_memory_limit_counts_and_ends_detached_descendants(project, manager):
    proc, pidfile = _start(project, "--memory", "120", alloc_mb=300)
    assert proc.returncode == 0, proc.stderr
    tid = proc.stdout.strip()
    pid = _grandchild(project, pidfile)
    result = _result(project, tid)
    assert result["status"] == "killed" and result["reason"] == "memory_limit", result
    wait_for(lambda: not pid_alive(pid), timeout=10, what="the grandchild to die at the limit")


def test_worker_status_reports_the_mechanism(project, manager):
    proc = project.cli("worker", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["containment"]
    assert report["mechanism"] in ("cgroup", "subreaper", "cookie", "process-group")
    assert report == containment.describe(dict(os.environ))
    if sys.platform.startswith("linux"):
        assert "subreaper" in report["layers"] and "cookie" in report["layers"]


def test_cookie_scan_finds_only_the_tasks_processes(tmp_path, project):
    import subprocess

    env = {**os.environ, "WEFT_TASK_TID": "1234567890123456789", "WEFT_CONTEXT": str(tmp_path)}
    ours = subprocess.Popen(["sleep", "30"], env=env, start_new_session=True)
    other = subprocess.Popen(["sleep", "30"], env={**env, "WEFT_CONTEXT": "/elsewhere"},
                             start_new_session=True)
    project.track(ours.pid)
    project.track(other.pid)
    try:
        # /proc/PID/environ shows the new environment only once exec has happened.
        wait_for(lambda: ours.pid in containment.cookie_pids("1234567890123456789", str(tmp_path)),
                 timeout=10, what="the task's process found by its cookie")
        wait_for(lambda: b"/elsewhere" in Path(f"/proc/{other.pid}/environ").read_bytes(),
                 timeout=10, what="the other project's process exec'd")
        found = containment.cookie_pids("1234567890123456789", str(tmp_path))
        assert ours.pid in found and other.pid not in found
    finally:
        for p in (ours, other):
            p.send_signal(signal.SIGKILL)
            p.wait()


def test_cgroup_detection_needs_a_delegated_memory_controller(tmp_path):
    root = tmp_path / "cg"
    (root / "weft").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "weft" / "cgroup.subtree_control").write_text("cpu pids\n")
    self_cgroup = tmp_path / "self"
    self_cgroup.write_text("0::/weft\n")
    path, reason = cgroups.find_cgroup({}, root=str(root), self_cgroup=str(self_cgroup))
    assert path is None and "memory" in reason
    (root / "weft" / "cgroup.subtree_control").write_text("cpu memory pids\n")
    path, reason = cgroups.find_cgroup({}, root=str(root), self_cgroup=str(self_cgroup))
    assert path == str(root / "weft")
    off, reason = cgroups.find_cgroup({"WEFT_CGROUP": "off"}, root=str(root),
                                          self_cgroup=str(self_cgroup))
    assert off is None and "WEFT_CGROUP" in reason
    missing, reason = cgroups.find_cgroup({}, root=str(tmp_path / "none"))
    assert missing is None and "no cgroup v2" in reason


def test_cgroup_per_task_files(tmp_path):
    groups = cgroups.Cgroups(str(tmp_path))
    path = groups.create("42", memory_mb=100, cpus=1.5)
    assert path == str(tmp_path / "weft-42")
    assert (tmp_path / "weft-42" / "memory.max").read_text() == str(100 << 20)
    assert (tmp_path / "weft-42" / "cpu.max").read_text() == "150000 100000"
    (tmp_path / "weft-42" / "memory.events").write_text("low 0\noom 1\noom_kill 1\n")
    assert groups.oom_killed("42")
    groups.kill("42")
    assert (tmp_path / "weft-42" / "cgroup.kill").read_text() == "1"


DETACH_FN = r'''
import os, signal, time

def run(pidfile):
    child = os.fork()
    if child == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with open(pidfile + ".tmp", "w") as fh:
                fh.write(str(os.getpid()))
            os.rename(pidfile + ".tmp", pidfile)
            while True:
                time.sleep(1)
        os._exit(0)
    os.waitpid(child, 0)
    while True:
        time.sleep(1)
'''


def test_task_process_killed_from_outside_takes_its_descendants(project, manager):
    """The task process itself dies by SIGKILL from outside weft (OOM killer, a user):
    its detached grandchild, adopted by the launcher, goes too. (Forked without exec,
    the grandchild carries no environment cookie: the launcher being a subreaper does it.)"""
    (project.root / "detachfn.py").write_text(DETACH_FN)
    pidfile = project.root / "fn-grandchild.pid"
    proc = project.cli("run", "--no-wait", "--function", "detachfn:run", "--arg", str(pidfile))
    assert proc.returncode == 0, proc.stderr
    tid = proc.stdout.strip()
    grandchild = _grandchild(project, pidfile)
    started = wait_for(lambda: [e for e in project.events(tid) if e["event"] == "task_started"],
                       what="task_started")
    os.kill(int(started[0]["pid"]), signal.SIGKILL)
    assert _result(project, tid)["status"] in ("failed", "killed")
    wait_for(lambda: not pid_alive(grandchild), timeout=10,
             what="the adopted grandchild to die with its task")
