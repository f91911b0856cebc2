"""Task groups (issue 14): a parallel limit and a pause stored in the broker
and obeyed by every manager, shown by 'weft group list' and 'weft task list'."""

from __future__ import annotations

import json

from conftest import cli_json, wait_for


def _group(project, name):
    return next(g for g in cli_json(project.cli("group", "list", "--json")) if g["group"] == name)


def _rows(project, *args):
    return cli_json(project.cli("task", "list", "--json", *args))


def test_parallel_limit_spans_two_managers(project):
    assert project.cli("group", "add", "g", "--parallel", "2").returncode == 0
    for _ in range(2):
        assert project.cli("worker", "start", "--max-concurrency", "4").returncode == 0
    tids = [project.cli("run", "--no-wait", "--group", "g", "--", "sleep", "30").stdout.strip()
            for _ in range(5)]
    free = project.cli("run", "--no-wait", "--", "echo", "free").stdout.strip()
    assert project.cli("result", free, "--timeout", "20").stdout == "free\n"  # other work flows
    wait_for(lambda: _group(project, "g")["running"] == 2, what="two of the group running")
    group = _group(project, "g")
    assert group["queued"] == 3 and group["parallel"] == 2
    started = {e["tid"] for e in project.events() if e["event"] == "task_started"}
    assert len(started & set(tids)) == 2
    waiting = [r["waiting"] for r in _rows(project, "--group", "g", "--status", "queued")]
    assert waiting == ["group g full (2 running)"] * 3
    # a higher limit lets one more start
    assert project.cli("group", "set", "g", "--parallel", "3").returncode == 0
    wait_for(lambda: _group(project, "g")["running"] == 3, what="a third running")
    assert project.cli("task", "kill", "--group", "g", "--json").returncode == 0


def test_pause_and_resume(project, cli_manager):
    assert project.cli("group", "pause", "p").returncode == 0
    tid = project.cli("run", "--no-wait", "--group", "p", "--", "echo", "resumed").stdout.strip()
    assert project.cli("run", "echo", "other").stdout == "other\n"  # the manager dispatches
    wait_for(lambda: _rows(project, "--group", "p")[0]["waiting"] == "group p paused",
             what="the task shown waiting on the pause")
    assert not [e for e in project.events(tid) if e["event"] == "task_started"]
    assert _group(project, "p")["paused"] is True
    assert project.cli("group", "resume", "p").returncode == 0
    assert project.cli("result", tid, "--timeout", "20").stdout == "resumed\n"


def test_group_bad_input(project):
    assert project.cli("group", "add", "bad name").returncode == 2
    assert project.cli("group", "add", "x", "--parallel", "0").returncode == 2
    assert project.cli("group", "add", "x").returncode == 0
    again = project.cli("group", "add", "x")
    assert again.returncode == 2 and "exists" in again.stderr
    assert project.cli("group", "resume", "nosuch").returncode == 4
    assert project.cli("run", "--group", "a b", "true").returncode == 2



def test_a_limit_counts_the_tasks_of_other_managers(project, client):
    """Manager A runs the group's only slot and is paused; manager B must wait."""
    assert project.cli("group", "add", "one", "--parallel", "1").returncode == 0
    a = cli_json(project.cli("worker", "start", "--json"))["tid"]
    first = client.submit(command=["sleep", "30"], group="one")
    wait_for(lambda: first.status()["status"] == "running", what="the first task running")
    assert project.cli("task", "pause", a).returncode == 0
    b = cli_json(project.cli("worker", "start", "--json"))["tid"]
    second = client.submit(command=["echo", "second"], group="one")
    other = client.submit(command=["echo", "other"])
    assert other.wait(timeout=30).status == "completed"  # B dispatches...
    assert [e["manager_tid"] for e in project.events(other.tid)
            if e["event"] == "task_started"] == [b]
    assert second.status()["status"] == "queued"  # ...but not into a full group
    first.kill()
    assert second.wait(timeout=30).stdout == "second\n"


def test_confirm_puts_a_claim_back_when_another_manager_filled_the_group(client):
    import time

    from weft.names import SPAWN_REQUESTS, WORKERS_REGISTRY
    from weft.runtime.groups import Group, GroupGate, write_group
    from weft.runtime.intake import parse

    broker = client.broker
    client.auto_start = False
    write_group(broker, Group("one", 1))
    # another manager, on another host, holding the group's slot (no pid: the harness
    # kills the process group of every pid in the registry at teardown)
    other = "1" * 19
    broker.write(WORKERS_REGISTRY, json.dumps({
        "tid": other, "role": "manager", "status": "active", "host": "elsewhere",
        "heartbeat_at": time.time(), "heartbeat_interval": 5}))
    held = client.submit(command=["true"], group="one")
    broker.move_one(SPAWN_REQUESTS, f"T{other}.reserved", message_id=int(held.tid))
    mine = client.submit(command=["true"], group="one")
    body, mid = broker.move_one(SPAWN_REQUESTS, "T2.reserved", message_id=int(mine.tid))
    gate = GroupGate(broker, "2")
    gate.limited = {"one"}
    assert gate.confirm(parse(body, mid), "T2.reserved", SPAWN_REQUESTS) is False
    assert broker.peek_one(SPAWN_REQUESTS, message_id=mid) is not None  # back, same TID
    assert broker.peek_one("T2.reserved", message_id=mid) is None
    broker.delete(f"T{other}.reserved", [int(held.tid)])  # the other task ended
    body, mid = broker.move_one(SPAWN_REQUESTS, "T2.reserved", message_id=mid)
    assert gate.confirm(parse(body, mid), "T2.reserved", SPAWN_REQUESTS) is True
