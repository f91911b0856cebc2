"""A pueue-style session end to end (issue 14, "Done when"): 100 commands in
two groups, pause one group, kill one task, restart a failed one, hold and
release one, bulk-stop by label, tidy the completed ones.

Every step the issue lists is a real ``weft`` command against a real
manager. The rest goes through the Python API in this process: the 100
submits (100 CLI processes would take 20 s on the 2-core VM), starting the
manager, and watching progress (one CLI process per look would cost 0.5 s
each); the CLI's own listing is what the assertions read.
"""

from __future__ import annotations

from conftest import cli_json, wait_for


def _by_tid(client):
    return {r["tid"]: r for r in client.tasks()}


def _started(project, tids):
    return {e["tid"] for e in project.events() if e["event"] == "task_started"} & set(tids)


def _statuses(client, tids):
    rows = _by_tid(client)
    return {rows[t]["status"] for t in tids}


def test_pueue_style_session(project, client):
    client.groups.add("fast", parallel=4)
    assert project.cli("group", "pause", "slow").returncode == 0
    client.auto_start = False
    fast = [client.submit(command=["sh", "-c", f"exit {int(i % 10 == 3)}"], group="fast",
                          name=f"fast-{i}").tid for i in range(50)]
    slow = [client.submit(command=["true"], group="slow", name=f"slow-{i}",
                          labels={"sweep": "s" if i < 10 else "t"}).tid for i in range(48)]
    sleeper = client.submit(command=["sleep", "60"], group="fast", name="sleeper").tid
    held = client.submit(command=["echo", "was-held"], name="held", hold=True).tid
    project.track(client.workers.start(max_concurrency=6).pid)

    # the paused group waits while the other runs (and never more than 4 of it at once)
    wait_for(lambda: len(_started(project, fast)) == 50 and
             _statuses(client, fast) <= {"completed", "failed"}, timeout=60,
             what="fast group done")
    rows = {r["tid"]: r for r in cli_json(project.cli("task", "list", "--json"))}
    assert {rows[t]["status"] for t in fast} == {"completed", "failed"}
    assert not _started(project, slow)
    assert rows[held]["status"] == "held"
    assert all(rows[t]["waiting"] == "group slow paused" for t in slow)

    # kill one
    wait_for(lambda: _by_tid(client)[sleeper]["status"] == "running", what="sleeper running")
    assert project.cli("task", "kill", sleeper).returncode == 0
    wait_for(lambda: _by_tid(client)[sleeper]["status"] == "killed", what="sleeper killed")

    # restart a failed one: same command, same group, a new TID
    failed = next(t for t in fast if rows[t]["status"] == "failed")
    new = project.cli("task", "restart", failed).stdout.strip()
    assert client.task(new).wait(timeout=30).exit_code == 1
    assert client.task(new).status()["restarted_from"] == failed

    # bulk-stop by label: the ten 'sweep=s' tasks of the paused group
    stopped = cli_json(project.cli("task", "stop", "--label", "sweep=s", "--json"))
    assert {o["tid"] for o in stopped} == set(slow[:10])
    assert {o["status"] for o in stopped} == {"cancelled"}

    # resume the group and release the held task: everything else runs
    assert project.cli("group", "resume", "slow").returncode == 0
    assert project.cli("task", "release", held).returncode == 0
    assert client.task(held).result(timeout=30).stdout == "was-held\n"
    wait_for(lambda: _statuses(client, slow[10:]) == {"completed"}, timeout=60,
             what="slow group completed")
    assert not _started(project, slow[:10])  # none of the stopped ones ever started

    # tidy the completed ones, keep the rest for a post-mortem
    report = cli_json(project.cli("tidy", "--status", "completed", "--older-than", "0s", "--json"))
    assert report["tasks_dropped"] >= 38 + 45
    statuses = {r["status"] for r in cli_json(project.cli("task", "list", "--json"))}
    assert "completed" not in statuses and {"failed", "killed", "cancelled"} <= statuses
