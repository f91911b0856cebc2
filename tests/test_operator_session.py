"""A pueue-style session end to end (issue 14, "Done when"): 100 commands in
two groups, pause one group, kill one task, restart a failed one, hold and
release one, bulk-stop by label, tidy the completed ones. The verbs go
through the real CLI against a real manager; the 100 submits go through the
Python API (100 CLI processes would take 20 s on the 2-core VM)."""

from __future__ import annotations

import pytest
from conftest import cli_json, wait_for


def _rows(project):
    return {r["tid"]: r for r in cli_json(project.cli("task", "list", "--json"))}


def _started(project, tids):
    return {e["tid"] for e in project.events() if e["event"] == "task_started"} & set(tids)


@pytest.mark.slow  # 13 s alone, 40 s in the busy full suite: run with -m slow
def test_pueue_style_session(project, client):
    assert project.cli("init").returncode == 0
    assert project.cli("group", "add", "fast", "--parallel", "4").returncode == 0
    assert project.cli("group", "pause", "slow").returncode == 0
    client.auto_start = False
    fast = [client.submit(command=["sh", "-c", f"exit {int(i % 10 == 3)}"], group="fast",
                          name=f"fast-{i}").tid for i in range(50)]
    slow = [client.submit(command=["true"], group="slow", name=f"slow-{i}",
                          labels={"sweep": "s" if i < 10 else "t"}).tid for i in range(48)]
    sleeper = client.submit(command=["sleep", "60"], group="fast", name="sleeper").tid
    held = client.submit(command=["echo", "was-held"], name="held", hold=True).tid
    assert project.cli("worker", "start", "--max-concurrency", "6").returncode == 0

    # the paused group waits while the other runs (and never more than 4 of it at once)
    wait_for(lambda: len(_started(project, fast)) == 50, timeout=60, what="fast group done")
    rows = _rows(project)
    assert {rows[t]["status"] for t in fast} == {"completed", "failed"}
    assert not _started(project, slow)
    assert rows[held]["status"] == "held"
    assert all(rows[t]["waiting"] == "group slow paused" for t in slow)

    # kill one
    wait_for(lambda: _rows(project)[sleeper]["status"] == "running", what="sleeper running")
    assert project.cli("task", "kill", sleeper).returncode == 0
    wait_for(lambda: _rows(project)[sleeper]["status"] == "killed", what="sleeper killed")

    # restart a failed one: same command, same group, a new TID
    failed = next(t for t in fast if rows[t]["status"] == "failed")
    new = project.cli("task", "restart", failed).stdout.strip()
    assert project.cli("result", new, "--timeout", "30").returncode == 1
    assert cli_json(project.cli("status", new, "--json"))["restarted_from"] == failed

    # bulk-stop by label: the ten 'sweep=s' tasks of the paused group
    stopped = cli_json(project.cli("task", "stop", "--label", "sweep=s", "--json"))
    assert {o["tid"] for o in stopped} == set(slow[:10])
    assert {o["status"] for o in stopped} == {"cancelled"}

    # resume the group and release the held task: everything else runs
    assert project.cli("group", "resume", "slow").returncode == 0
    assert project.cli("task", "release", held).returncode == 0
    assert project.cli("result", held, "--timeout", "30").stdout == "was-held\n"
    wait_for(lambda: len(_started(project, slow)) == 38, timeout=60, what="slow group done")
    assert not _started(project, slow[:10])  # none of the stopped ones ever started
    wait_for(lambda: all(_rows(project)[t]["status"] == "completed" for t in slow[10:]),
             timeout=30, what="slow group completed")

    # tidy the completed ones, keep the rest for a post-mortem
    report = cli_json(project.cli("tidy", "--status", "completed", "--older-than", "0s", "--json"))
    assert report["tasks_dropped"] >= 38 + 45
    statuses = {r["status"] for r in _rows(project).values()}
    assert "completed" not in statuses and {"failed", "killed", "cancelled"} <= statuses
