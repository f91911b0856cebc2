"""A paused manager shows as paused everywhere at once, and a paused task's
elapsed clock stops (issue 14, "status that tells the truth")."""

from __future__ import annotations

from conftest import cli_json, wait_for


def test_paused_manager_and_task_shown_as_paused(project, client):
    mgr = cli_json(project.cli("worker", "start", "--json"))["tid"]
    task = client.submit(command=["sleep", "30"])
    wait_for(lambda: task.status()["status"] == "running", what="running")
    assert project.cli("task", "pause", task.tid).returncode == 0
    assert project.cli("task", "pause", mgr).returncode == 0
    # at once, before the manager's next heartbeat
    [worker] = cli_json(project.cli("worker", "list", "--json"))
    assert worker["shown_status"] == "paused" and worker["status"] == "active"
    assert "paused" in project.cli("worker", "list").stdout
    assert "(paused)" in project.cli("worker", "status").stdout
    assert "paused" in project.cli("status").stdout.split("tasks")[0]
    snap = client.snapshot()
    assert snap["managers"][0]["paused"] is True
    [row] = snap["running"]
    assert row["status"] == "paused"
    first = row["elapsed"]
    wait_for(lambda: client.snapshot()["at"] > snap["at"] + 0.3, what="time passing")
    assert client.snapshot()["running"][0]["elapsed"] == first  # the clock stopped
    assert project.cli("task", "resume", mgr).returncode == 0
    [worker] = cli_json(project.cli("worker", "list", "--json"))
    assert worker["shown_status"] == "active"
    assert project.cli("task", "resume", task.tid).returncode == 0
    wait_for(lambda: (client.snapshot()["running"] or [{}])[0].get("elapsed", 0) > first,
             what="the clock running again")
    task.kill()
