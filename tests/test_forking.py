"""The launcher's fork path: a command's environment, and launches forked in one batch."""

from __future__ import annotations

import os
import stat

from weft.runtime import forking


def test_command_env_is_the_launchers_plus_the_delta_minus_the_unset(monkeypatch):
    monkeypatch.setattr(forking, "_BASE_ENV", {b"HOME": b"/home/x", b"WEFT_REQUEST_ID": b"old",
                                               b"KEEP": b"1"})
    env = forking.command_env({"argv": ["true"], "env": {"WEFT_TASK_TID": "7", "NAME": "caf\xe9"},
                               "unset_env": ["WEFT_REQUEST_ID"]})
    assert env == {b"HOME": b"/home/x", b"KEEP": b"1", b"WEFT_TASK_TID": b"7",
                   b"NAME": os.fsencode("caf\xe9")}
    assert forking._BASE_ENV[b"WEFT_REQUEST_ID"] == b"old"  # a copy: the launcher's is untouched


def test_functions_and_path_changes_keep_os_environ():
    assert forking.command_env({"argv": None, "function": "m:f", "env": {"A": "1"}}) is None
    assert forking.command_env({"argv": ["x"], "env": {"PATH": "/opt/bin"}}) is None
    assert forking.command_env({"argv": ["x"], "unset_env": ["PATH"]}) is None


def test_a_task_path_finds_its_command_and_env_reaches_it(project, client, manager, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    probe = bindir / "weft-probe-cmd"
    probe.write_text('#!/bin/sh\necho "probe $GREETING"\n')
    probe.chmod(probe.stat().st_mode | stat.S_IXUSR)
    res = client.run(command=["weft-probe-cmd"], wait_timeout=30,
                     env={"PATH": f"{bindir}:{os.environ['PATH']}", "GREETING": "hi"})
    assert res.stdout.strip() == "probe hi"
    res = client.run(command=["sh", "-c", 'echo "$GREETING:$WEFT_TASK_TID"'],
                     env={"GREETING": "there"}, wait_timeout=30)
    assert res.stdout.strip() == f"there:{res.tid}"


def test_launches_sent_together_all_run_once(project, client, manager):
    tasks = [client.submit(command=["sh", "-c", f"echo {i}"]) for i in range(24)]
    outputs = [task.result(timeout=60).stdout.strip() for task in tasks]
    assert outputs == [str(i) for i in range(24)]
