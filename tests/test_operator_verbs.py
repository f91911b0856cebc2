"""Operator verbs of issue 14, through the real CLI and a real manager:
restart, hold and release, the task list with labels and reasons, and
bulk stop that leaves no matched task to start afterwards."""

from __future__ import annotations

import json

import pytest
from conftest import cli_json, wait_for

from weft.errors import UsageError


def _status(project, tid):
    return cli_json(project.cli("status", tid, "--json"))


def _row(project, tid):
    return next(t for t in cli_json(project.cli("task", "list", "--json")) if t["tid"] == tid)


def test_restart_failed_task_with_new_env_and_command(project, cli_manager):
    proc = project.cli("run", "--name", "flaky", "--label", "k=v", "--env", "A=1", "--",
                       "sh", "-c", "echo a=$A; exit 3")
    assert proc.returncode == 3 and proc.stdout == "a=1\n"
    old = cli_json(project.cli("task", "list", "--json", "--name", "flaky"))[0]
    assert old["target"] == "sh -c echo a=$A; exit 3" and old["labels"] == {"k": "v"}
    # same spec again
    again = project.cli("task", "restart", old["tid"]).stdout.strip()
    assert project.cli("result", again).returncode == 3
    # merged env, new command
    new = project.cli("task", "restart", "--env", "B=2", old["tid"][-8:], "--",
                      "sh", "-c", "echo $A$B").stdout.strip()
    result = project.cli("result", new, "--timeout", "20")
    assert result.returncode == 0 and result.stdout == "12\n"
    info = _status(project, new)
    assert info["restarted_from"] == old["tid"] and info["name"] == "flaky"
    assert info["labels"] == {"k": "v"}


def test_restart_cancelled_and_refusals(project, cli_manager):
    tid = project.cli("run", "--no-wait", "--delay", "60", "--", "echo", "late").stdout.strip()
    assert project.cli("task", "stop", tid).returncode == 0
    assert _status(project, tid)["status"] == "cancelled"
    new = project.cli("task", "restart", tid).stdout.strip()
    assert project.cli("result", new, "--timeout", "20").stdout == "late\n"
    running = project.cli("run", "--no-wait", "--", "sleep", "30").stdout.strip()
    wait_for(lambda: _status(project, running)["status"] == "running", what="running")
    proc = project.cli("task", "restart", running)
    assert proc.returncode == 2 and "running" in proc.stderr
    project.cli("task", "kill", running)


def test_hold_and_release(project, cli_manager):
    held = project.cli("run", "--hold", "--label", "h=1", "--", "echo", "was-held").stdout.strip()
    assert _row(project, held)["status"] == "held"
    assert project.rows("weft.spawn.held")[0]["taskspec"]["command"] == ["echo", "was-held"]
    # the manager runs later work while the held task waits
    assert project.cli("run", "echo", "other").returncode == 0
    row = _row(project, held)
    assert row["status"] == "held" and row["waiting"].startswith("held")
    assert project.cli("task", "pause", held).returncode == 2
    assert project.cli("task", "release", held).returncode == 0
    assert project.cli("result", held, "--timeout", "20").stdout == "was-held\n"
    # hold a queued (delayed) task, then cancel it while held
    tid = project.cli("run", "--no-wait", "--delay", "60", "--", "true").stdout.strip()
    assert "held" in project.cli("task", "hold", tid).stdout
    assert _status(project, tid)["status"] == "held"
    assert project.cli("task", "stop", tid).returncode == 0
    assert _status(project, tid)["status"] == "cancelled"
    assert project.rows("weft.spawn.held") == []
    finished = project.cli("task", "hold", held)
    assert finished.returncode == 2 and "not queued" in finished.stderr


def test_task_list_filters_and_reasons(project):
    assert project.cli("init").returncode == 0
    env = {"WEFT_MANAGER_IDLE_TIMEOUT": "120"}
    a = project.cli("run", "--no-wait", "--delay", "60", "--label", "s=1", "--group", "g",
                    "--priority", "5", "--", "echo", "a", env=env).stdout.strip()
    b = project.cli("run", "--hold", "--label", "s=2", "--name", "bee", "--function",
                    "os:getcwd").stdout.strip()
    rows = cli_json(project.cli("task", "list", "--json", "--label", "s=1"))
    assert [r["tid"] for r in rows] == [a]
    assert rows[0]["group"] == "g" and rows[0]["priority"] == 5
    assert rows[0]["waiting"].startswith("delayed until")
    assert [r["tid"] for r in cli_json(project.cli("task", "list", "--json", "--group", "g"))] == [a]
    held = cli_json(project.cli("task", "list", "--json", "--status", "held"))
    assert [(r["tid"], r["name"], r["target"]) for r in held] == [(b, "bee", "os:getcwd()")]
    assert [r["tid"] for r in cli_json(project.cli("task", "list", "--json", "--group",
                                                "default"))] == [b]
    text = project.cli("task", "list").stdout
    assert "s=1" in text and "delayed until" in text and "echo a" in text


def test_bulk_stop_by_label_leaves_nothing_to_start(project, cli_manager, client):
    running = client.submit(command=["sleep", "60"], labels={"sweep": "x"}).tid
    wait_for(lambda: _status(project, running)["status"] == "running", what="running")
    queued = [client.submit(command=["sleep", "60"], labels={"sweep": "x"}).tid
              for _ in range(6)]
    other = client.submit(command=["true"], delay=60, labels={"sweep": "y"}).tid
    out = cli_json(project.cli("task", "stop", "--label", "sweep=x", "--json"))
    assert {o["tid"] for o in out} == {running, *queued}
    started_before = {e["tid"] for e in project.events() if e.get("event") == "task_started"}
    # the manager keeps dispatching: a new task runs, and none of the matched ones starts
    assert project.cli("run", "echo", "after").stdout == "after\n"
    wait_for(lambda: all(_status(project, t)["status"] in ("cancelled", "killed")
                         for t in [running, *queued]), what="every matched task ended")
    started_after = {e["tid"] for e in project.events() if e.get("event") == "task_started"}
    assert not (started_after - started_before) & set(queued)
    assert _status(project, other)["status"] == "queued"  # not matched: untouched


def test_bulk_all_needs_yes_without_a_terminal(project):
    assert project.cli("init").returncode == 0
    tid = project.cli("run", "--no-wait", "--delay", "60", "--", "true").stdout.strip()
    proc = project.cli("task", "hold", "--all")
    assert proc.returncode == 2 and "--yes" in proc.stderr
    assert project.cli("task", "hold", "--all", "--yes").returncode == 0
    assert _status(project, tid)["status"] == "held"
    assert project.cli("task", "stop").returncode == 2  # no TID, no filter


def test_api_cancel_by_label_and_hold(client):
    client.auto_start = False
    a = client.submit(command=["true"], labels={"run": "7"})
    b = client.submit(command=["true"], labels={"run": "8"})
    h = client.submit(command=["true"], labels={"run": "7"}, hold=True)
    assert h.status()["status"] == "held"
    assert client.hold(label="run=8") == [{"tid": b.tid, "status": "held"}]
    done = client.cancel(label={"run": "7"})
    assert {d["tid"] for d in done} == {a.tid, h.tid}
    assert a.wait(timeout=5).status == "cancelled" and h.wait(timeout=5).status == "cancelled"
    assert client.release(b.tid) == [{"tid": b.tid, "status": "released"}]
    with pytest.raises(UsageError, match="say which tasks"):
        client.cancel()


def test_tidy_completed_only_keeps_failures(project, cli_manager):
    assert project.cli("run", "true").returncode == 0
    assert project.cli("run", "false").returncode == 1
    done = {t["status"]: t["tid"] for t in cli_json(project.cli("task", "list", "--json"))}
    dry = cli_json(project.cli("tidy", "--status", "completed", "--older-than", "0s", "--dry-run",
                            "--json"))
    assert dry["tasks_to_drop"] == 1
    assert cli_json(project.cli("tidy", "--status", "completed", "--older-than", "0s",
                             "--json"))["tasks_dropped"] == 1
    assert project.rows(f"T{done['completed']}.outbox") == []
    assert project.rows(f"T{done['failed']}.outbox")  # kept for a post-mortem
    assert project.cli("tidy", "--older-than", "soon").returncode == 2


def test_edit_queued_task_priority_env_group(project):
    assert project.cli("worker", "start", "--max-concurrency", "1").returncode == 0
    blocker = project.cli("run", "--no-wait", "--", "sleep", "30").stdout.strip()
    wait_for(lambda: _status(project, blocker)["status"] == "running", what="blocker running")
    first = project.cli("run", "--no-wait", "--", "sh", "-c", "echo first $X").stdout.strip()
    second = project.cli("run", "--no-wait", "--", "sh", "-c", "echo second $X").stdout.strip()
    out = cli_json(project.cli("task", "edit", second, "--priority", "10", "--env", "X=1",
                            "--group", "g", "--json"))
    assert out == {"tid": second, "priority": 10, "group": "g", "env": ["X"]}
    row = _row(project, second)
    assert row["priority"] == 10 and row["group"] == "g" and row["status"] == "queued"
    refused = project.cli("task", "edit", blocker, "--priority", "1")
    assert refused.returncode == 2 and "waiting task" in refused.stderr
    project.cli("task", "kill", blocker)
    assert project.cli("result", second, "--timeout", "20").stdout == "second 1\n"
    assert project.cli("result", first, "--timeout", "20").stdout == "first\n"
    starts = [e["tid"] for e in project.events() if e["event"] == "task_started"]
    assert starts.index(second) < starts.index(first)  # the edited priority was obeyed


def test_interrupted_edit_is_finished_by_the_next(client):
    from weft.client.editing import SIDE, recover
    from weft.names import SPAWN_REQUESTS

    client.auto_start = False
    task = client.submit(command=["true"], priority=1)
    broker = client.broker
    side = SIDE[SPAWN_REQUESTS]
    body, _ = broker.move_one(SPAWN_REQUESTS, side, message_id=int(task.tid))
    new = {**json.loads(body)}
    new["taskspec"] = {**new["taskspec"], "priority": 7}
    broker.write(side, json.dumps({"edit_of": task.tid, "request": new}))
    broker.delete(side, [int(task.tid)])  # the crash came here: old body gone, new not in
    assert recover(broker) == 1
    assert list(broker.peek_all(side)) == []
    back = broker.peek_one(SPAWN_REQUESTS, message_id=int(task.tid))
    assert back is not None and json.loads(back[0])["taskspec"]["priority"] == 7
    # a request taken but never rewritten goes back unchanged
    broker.move_one(SPAWN_REQUESTS, side, message_id=int(task.tid))
    assert recover(broker) == 1
    assert broker.peek_one(SPAWN_REQUESTS, message_id=int(task.tid)) is not None
