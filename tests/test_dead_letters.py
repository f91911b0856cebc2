"""Bad spawn requests go to weft.spawn.rejected; the manager keeps serving."""

from __future__ import annotations

import json

import pytest
from conftest import wait_for

BAD = [
    ("{not json", "not JSON"),
    (json.dumps({"taskspec": {"command": ["true"]}, "colour": "blue"}), "colour: unknown field"),
    (json.dumps({"taskspec": {"function": "x"}}), "package.module:callable"),
    (json.dumps({"taskspec": {"command": ["true"], "function": "a:b"}}), "exactly one"),
    (json.dumps(["a", "list"]), "JSON object"),
]


@pytest.mark.parametrize(("body", "problem"), BAD, ids=["json", "unknown", "fn", "two", "list"])
def test_bad_request_is_dead_lettered_with_a_reason(project, manager, body, problem):
    wrote = project.cli("queue", "write", "weft.spawn.requests", body)
    assert wrote.returncode == 0, wrote.stderr
    mid = wrote.stdout.strip()
    tid = mid.zfill(19)
    wait_for(lambda: project.rows("weft.spawn.rejected"), what="dead letter")
    peek = project.cli("queue", "peek", "weft.spawn.rejected", "--all", "--json")
    rows = [json.loads(line) for line in peek.stdout.splitlines()]
    assert [(r["id"], r["body"]) for r in rows] == [(mid, body)]  # moved, id kept
    assert project.rows("weft.spawn.requests") == []
    rejected = [e for e in project.events(tid) if e["event"] == "task_rejected"]
    assert len(rejected) == 1 and problem in rejected[0]["error"]
    res = project.cli("result", tid, "--json", "--timeout", "10")
    assert res.returncode == 2 and json.loads(res.stdout)["status"] == "rejected"
    ping = project.cli("task", "ping", manager.tid)
    assert ping.returncode == 0 and "PONG" in ping.stdout


def test_status_counts_dead_letters_and_good_work_flows_past(project, manager):
    project.cli("queue", "write", "weft.spawn.requests", "{not json")
    project.cli("queue", "write", "weft.spawn.requests", "[]")
    ok = project.cli("run", "echo", "still-serving")
    assert ok.returncode == 0 and ok.stdout == "still-serving\n"
    status = json.loads(project.cli("status", "--json").stdout)
    assert status["dead_letters"] == 2
    assert "2 dead letter(s)" in project.cli("status").stdout
