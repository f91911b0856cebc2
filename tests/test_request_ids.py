"""Request ids end to end: CLI → spawn request → events → child env → the
tasks a task submits; task logs and trees that follow them."""

from __future__ import annotations

import json
import sys

from conftest import wait_for

from weft.names import SPAWN_REQUESTS


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def only_tid(project, request_id: str) -> str:
    listing = project.cli("task", "list", "--request-id", request_id, "--json")
    assert listing.returncode == 0, listing.stderr
    tids = [t["tid"] for t in json.loads(listing.stdout)]
    assert len(tids) == 1, tids
    return tids[0]


def test_request_id_reaches_the_child_and_every_event(project, manager):
    run = project.cli("run", "--request-id", "req-abc123", "--", "sh", "-c",
                      'echo "$WEFT_REQUEST_ID"')
    assert run.returncode == 0, run.stderr
    assert run.stdout == "req-abc123\n"
    tid = only_tid(project, "req-abc123")

    logs = project.cli("task", "logs", tid, "--json")
    assert logs.returncode == 0, logs.stderr
    entries = json_lines(logs.stdout)
    events = [e for e in entries if e["type"] == "event"]
    names = [e["event"] for e in events]
    assert names[-3:] == ["task_spawning", "task_started", "task_completed"]
    assert names[:-3] in (["task_submitted"], ["task_submitted", "task_admitted"])
    assert all(e["request_id"] == "req-abc123" and e["tid"] == tid for e in entries)
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    kinds = [e["type"] for e in entries]
    assert kinds.index("stream") > kinds.index("event") and kinds[-2:] in (
        ["result", "event"], ["event", "result"])
    assert [e["data"] for e in entries if e["type"] == "stream"] == ["req-abc123\n"]
    # The raw log, read without weft, says the same.
    raw = project.events(tid)
    assert len(raw) == len(events) and all(e["request_id"] == "req-abc123" for e in raw)

    plain = project.cli("task", "logs", tid[-10:])
    assert plain.returncode == 0
    lines = plain.stdout.splitlines()
    assert "req-abc123" in lines and lines.index("req-abc123") > 1
    assert "task_started" in lines[lines.index("req-abc123") - 1]
    assert "task_completed" in lines[-1]


def test_a_task_submitted_by_a_task_inherits_request_id_and_parent(project, manager):
    weft = f"{sys.executable} -m weft.cli.main"
    script = (f'{weft} run -- sh -c "{weft} run --no-wait -- sh -c \'exit 4\' >/dev/null; '
              f'echo grandchild-queued"; {weft} run -- true')
    run = project.cli("run", "--request-id", "req-tree", "--name", "root", "--", "sh", "-c",
                      script)
    assert run.returncode == 0, run.stderr
    listing = json.loads(project.cli("task", "list", "--request-id", "req-tree", "--json").stdout)
    root = [t for t in listing if t.get("name") == "root"][0]["tid"]
    wait_for(lambda: [e for e in project.events() if e["event"] == "task_failed"
                      and e.get("request_id") == "req-tree"], what="the grandchild to fail")

    tree = json.loads(project.cli("status", root, "--tree", "--json").stdout)
    assert tree["tid"] == root and tree["request_id"] == "req-tree"
    assert len(tree["children"]) == 2
    assert all(c["parent_tid"] == root and c["request_id"] == "req-tree"
               for c in tree["children"])
    [middle] = [c for c in tree["children"] if c["children"]]
    [grandchild] = middle["children"]
    assert grandchild["status"] == "failed" and grandchild["parent_tid"] == middle["tid"]
    assert tree["rollup"] == {"running": 0, "queued": 0, "done": 2, "failed": 1}

    status = project.cli("status", root)
    assert "children  2 done, 1 failed" in status.stdout
    shown = project.cli("status", root, "--tree")
    assert shown.returncode == 0
    assert grandchild["tid"] in shown.stdout and "children: 2 done, 1 failed" in shown.stdout

    counts = json.loads(project.cli("status", "--request-id", "req-tree", "--json").stdout)
    assert counts["tasks"] == {"completed": 3, "failed": 1}
    tids = {e["tid"] for e in json_lines(
        project.cli("events", "--request-id", "req-tree", "--json").stdout)}
    assert len(tids) == 4 and root in tids


def test_a_rejected_request_keeps_its_request_id(project, client, manager):
    bad = {"request_id": "req-bad", "taskspec": {"command": ["true"], "bogus": 1}}
    tid = str(client.broker.write(SPAWN_REQUESTS, json.dumps(bad))).zfill(19)
    [event] = wait_for(lambda: project.events(tid), what="the rejection event")
    assert event["event"] == "task_rejected" and event["request_id"] == "req-bad"
    result = client.task(tid).wait(timeout=30)
    assert result.status == "rejected"
    assert json.loads(project.cli("task", "logs", tid, "--json").stdout.splitlines()[-1])[
        "request_id"] == "req-bad"


def test_manager_log_lines_name_the_request(project, manager):
    run = project.cli("run", "--request-id", "req-logline", "--", "sh", "-c", "exit 7")
    assert run.returncode == 7
    log = project.root / ".weft" / "logs" / f"manager-{manager.tid}.log"
    text = wait_for(lambda: "req-logline" in log.read_text() and log.read_text(),
                    what="a manager log line with the request id")
    [line] = [ln for ln in text.splitlines() if "req-logline" in ln]
    assert "task_failed" in line and "WARNING" in line and "exit_code=7" in line


def test_client_request_id_reaches_a_function_task(client, manager):
    task = client.submit(function="os:getenv", args=["WEFT_REQUEST_ID"], request_id="req-fn")
    assert task.result(timeout=30).value == "req-fn"
    assert client.submit(function="os:getenv", args=["WEFT_PARENT_TID"]).result(
        timeout=30).value is None
    generated = client.submit(function="os:getenv", args=["WEFT_REQUEST_ID"])
    value = generated.result(timeout=30).value
    assert len(value) == 36 and value == generated.status()["request_id"]  # a fresh UUID4
    node = client.tree(task.tid)
    assert node["children"] == [] and node["rollup"]["done"] == 0


def test_a_task_cancelled_while_queued_keeps_its_request_id(project, client, manager):
    assert client.task(manager.tid).pause()["ok"]
    task = client.submit(command=["true"], request_id="req-queued", name="never")
    assert task.stop()["status"] == "cancelled"
    submitted, event = project.events(task.tid)
    assert submitted["event"] == "task_submitted" and submitted["request_id"] == "req-queued"
    assert event["event"] == "task_cancelled" and event["request_id"] == "req-queued"
    assert event["name"] == "never"
    assert task.wait(timeout=30).to_dict()["request_id"] == "req-queued"


def test_a_task_that_can_never_fit_is_rejected_with_its_request_id(project, client, manager):
    task = client.submit(command=["true"], request_id="req-huge", resources={"cpus": 4096})
    result = task.wait(timeout=30)
    assert result.status == "rejected"
    [event] = [e for e in project.events(task.tid) if e["event"] == "task_rejected"]
    assert event["request_id"] == "req-huge"
    text = project.cli("metrics").stdout
    assert "weft_tasks_rejected_total 1.0" in text
    assert 'weft_admission_decisions_total{decision="reject",reason="insufficient_capacity"} 1.0' \
        in text
