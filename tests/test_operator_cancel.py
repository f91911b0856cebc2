"""Cancel by a list of TIDs (issue 14): ``client.cancel([tid, ...])`` and
``weft task stop TID TID ...``, with the bulk stop's guarantee that none of
the listed tasks starts after the call returns, and every one answered."""

from __future__ import annotations

import pytest
from conftest import cli_json, wait_for

from weft.errors import NotFound, UsageError


def _started(project):
    return {e["tid"] for e in project.events() if e.get("event") == "task_started"}


def test_api_cancel_a_list_running_and_queued(project, client):
    assert project.cli("worker", "start", "--max-concurrency", "1").returncode == 0
    client.auto_start = False
    running = client.submit(command=["sleep", "60"])
    wait_for(lambda: running.tid in _started(project), what="the first task to run")
    queued = [client.submit(command=["true"]) for _ in range(4)]
    spared = client.submit(command=["echo", "spared"])
    tids = [running.tid, *(t.tid for t in queued)]
    out = client.cancel([*tids, queued[0].tid[-8:]])  # a short form of one listed twice
    assert [o["tid"] for o in out] == tids  # each once, in the order given
    assert [o["status"] for o in out[1:]] == ["cancelled"] * 4
    assert out[0]["reply"] == "stopping"  # STOP answered by the live task
    # the slot is free again: the task that was not listed runs, the listed ones never do
    wait_for(lambda: spared.tid in _started(project), what="the spared task to run")
    assert not _started(project) & {t.tid for t in queued}
    assert running.wait(timeout=30).status == "cancelled"
    assert all(t.wait(timeout=5).status == "cancelled" for t in queued)


def test_api_cancel_list_refusals_change_nothing(client):
    client.auto_start = False
    task = client.submit(command=["true"])
    with pytest.raises(UsageError, match="not both"):
        client.cancel([task.tid], label="a=b")
    with pytest.raises(UsageError, match="empty"):
        client.cancel([])
    with pytest.raises(NotFound):
        client.cancel([task.tid, "999999"])  # resolved first: the good one is untouched
    assert task.status()["status"] == "queued"
    assert client.cancel((task.tid,), kill=True)[0]["status"] == "cancelled"


def test_cli_stop_several_tids(project):
    assert project.cli("init").returncode == 0
    tids = [project.cli("run", "--no-wait", "--delay", "60", "--", "true").stdout.strip()
            for _ in range(3)]
    out = cli_json(project.cli("task", "stop", tids[0], tids[1][-8:], "--json"))
    assert out == [{"tid": t, "status": "cancelled", "reply": "cancelled before it started"}
                   for t in tids[:2]]
    plain = project.cli("task", "stop", tids[2], tids[0])
    assert plain.returncode == 0
    assert plain.stdout.splitlines() == [f"{tids[2]}  cancelled  cancelled before it started",
                                         f"{tids[0]}  cancelled  already cancelled"]
    mixed = project.cli("task", "kill", tids[0], "--label", "a=b")
    assert mixed.returncode == 2 and "not both" in mixed.stderr
    held = [project.cli("run", "--hold", "--", "true").stdout.strip() for _ in range(2)]
    released = cli_json(project.cli("task", "release", *held, "--json"))
    assert released == [{"tid": t, "status": "released"} for t in held]
