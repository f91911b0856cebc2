"""Inside a task: current_task(), and tasks that submit tasks (parent_tid)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from jobs_module import write_jobs

import weft


@pytest.fixture
def jobs(project):
    return write_jobs(project.root)


def test_current_task_is_none_outside_weft(project):
    assert weft.current_task() is None


def test_current_task_inside_a_task(project, client, manager, jobs):
    task = client.submit(function="pkg.jobs:whoami", request_id="rq-me")
    me = task.result(timeout=30).value
    assert me == {"tid": task.tid, "parent_tid": None, "request_id": "rq-me",
                  "manager_tid": manager.tid, "attempt": 1}


def test_a_task_that_submits_a_task(project, client, manager, jobs):
    outer = client.submit(function="pkg.jobs:nested", args=[7], request_id="rq-tree")
    value = outer.result(timeout=60).value
    assert value["value"] == 49
    child = client.task(value["child"])
    events = child.events()
    assert events and {e.get("parent_tid") for e in events} == {outer.tid}
    assert {e.get("request_id") for e in events} == {"rq-tree"}
    assert child.status()["parent_tid"] == outer.tid
    assert child.result().value == 49


def test_the_child_sees_its_parent(project, client, manager, jobs):
    outer = client.submit(function="pkg.jobs:nested_whoami")
    child_view = outer.result(timeout=60).value
    assert child_view["parent_tid"] == outer.tid
    assert child_view["tid"] != outer.tid
    assert child_view["request_id"] == outer.result().request_id


CHECK = """
import json
from weft import WeftClient

with WeftClient() as client:
    out = {}
    out["squares"] = list(client.map("pkg.jobs:square", range(50), timeout=90))
    try:
        client.submit(function="pkg.jobs:boom").result(timeout=60)
        out["error"] = None
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    outer = client.submit(function="pkg.jobs:nested", args=[7])
    value = outer.result(timeout=60).value
    out["nested"] = value["value"]
    out["outer"] = outer.tid
    out["child_parents"] = sorted({e.get("parent_tid") for e in client.task(value["child"]).events()})
    out["pong"] = client.task(client.workers.list()[0].tid).ping(timeout=10)["reply"]
    client.workers.stop(all=True)
print(json.dumps(out))
"""


def test_the_issue_checks_as_a_user_script(project, jobs):
    """The four checks of issue 4, run as a script in a fresh directory."""
    import subprocess

    (project.root / "check.py").write_text(textwrap.dedent(CHECK))
    proc = subprocess.run([sys.executable, "check.py"], cwd=project.root, env=project.env,
                          capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["squares"] == [i * i for i in range(50)]
    assert out["error"].startswith("TaskFailed") and "kaboom-42" in out["error"]
    assert out["nested"] == 49
    assert out["child_parents"] == [out["outer"]]
    assert out["pong"] == "PONG"
    assert all(r["status"] == "stopped" for r in project.registry().values())


def test_command_tasks_see_their_identity(project, client, manager):
    res = client.run(command=["sh", "-c", 'echo "$WEFT_TASK_TID $WEFT_REQUEST_ID $WEFT_CONTEXT"'],
                     request_id="rq-sh", wait_timeout=30)
    assert res.stdout.split() == [res.tid, "rq-sh", str(project.root)]
