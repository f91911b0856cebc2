"""Crash recovery: dead managers, dead launchers, dead task processes.

Real managers, real SIGKILLs; the broker is read directly (``project.rows``)
so the checks do not depend on weft's own readers.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter

import pytest
from conftest import pid_alive, running_status, wait_for

from weft.names import SPAWN_REQUESTS


def _result(project, tid):
    rows = project.rows(f"T{tid}.outbox")
    return rows[-1] if rows and rows[-1].get("type") == "result" else None


def _events(project, name):
    return [e for e in project.events() if e.get("event") == name]


def _reserved_claims(project):
    """Every message left in any T*.reserved queue (claims and work items)."""
    import sqlite3

    con = sqlite3.connect(project.root / ".weft" / "broker.db")
    try:
        return con.execute("SELECT queue, ts FROM messages WHERE queue LIKE 'T%.reserved' "
                           "AND claimed = 0").fetchall()
    finally:
        con.close()


def test_manager_sigkill_mid_flow_new_manager_finishes_everything(project, client):
    first = client.workers.start(max_concurrency=2)
    project.track(first.pid)
    client.auto_start = False
    tids = [client.submit(command=["sleep", "0.05"]).tid for _ in range(60)]
    wait_for(lambda: len(_events(project, "task_completed")) >= 8, what="some tasks done")
    os.kill(first.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(first.pid), what="manager gone")
    second = client.workers.start(max_concurrency=2)
    project.track(second.pid)
    wait_for(lambda: all(_result(project, t) for t in tids), timeout=60, what="all 60 results")
    assert {_result(project, t)["status"] for t in tids} == {"completed"}
    started = Counter(e["tid"] for e in _events(project, "task_started"))
    assert all(started[t] == 1 for t in tids), [t for t in tids if started[t] != 1]
    listing = json.loads(project.cli("task", "list", "--json").stdout)
    listed = [row["tid"] for row in listing]
    assert sorted(listed) == sorted(tids)
    wait_for(lambda: not _reserved_claims(project), what="no claims left")


def test_children_of_a_dead_manager_finish_and_their_results_land(project, client, manager):
    task = client.submit(command=["sh", "-c", "sleep 1; echo done"])
    status = wait_for(lambda: running_status(task), what="task running")
    launcher = project.registry()[manager.tid]["launcher_pid"]
    os.kill(manager.pid, signal.SIGKILL)
    result = task.wait(timeout=20)
    assert result.status == "completed" and result.stdout == "done\n"
    assert status["pid"] == result.raw.get("pid", status["pid"])
    assert [e["event"] for e in project.events(task.tid)].count("task_started") == 1
    assert "task_adopted" in [e["event"] for e in project.events(task.tid)]
    wait_for(lambda: not pid_alive(launcher), what="orphaned launcher exits when done")
    record = project.registry()[manager.tid]
    assert record["status"] == "stopped" and "launcher" in record["stop_reason"]
    wait_for(lambda: not _reserved_claims(project), what="claims and work items deleted")


def test_orphaned_launcher_writes_the_missing_started_event(project, client):
    """The window: the launcher said "started", the manager died before logging it."""
    from weft.runtime.batch import Batch
    from weft.runtime.consumer import Consumer
    from weft.runtime.intake import parse
    from weft.runtime.launcher import Launcher

    broker = client.broker
    mgr = str(broker.generate_id())
    spec = client.build_spec(command=["sh", "-c", "sleep 0.3; echo adopted"])
    from weft.models import SpawnRequest

    body = SpawnRequest(taskspec=spec).model_dump_json(exclude_none=True)
    mid = broker.write(SPAWN_REQUESTS, body)
    broker.move_one(SPAWN_REQUESTS, f"T{mgr}.reserved", message_id=mid)
    cand = parse(body, mid)

    class Host:
        manager_tid = mgr

    consumer = Consumer(cand.spec, request=cand.request, batch=Batch(broker), host=Host())
    consumer.claim_id = mid
    launcher = Launcher(root=str(project.root), manager_tid=mgr)
    launcher.start()
    project.track(launcher.pid)
    try:
        env, unset = consumer.child_env(str(project.root))
        launcher.launch(consumer.launch_op(env, unset, stdin=None))
        frames: list[dict] = []
        wait_for(lambda: frames.extend(launcher.receive()) or
                 any(f["ev"] == "started" for f in frames), what="started frame")
        launcher.close()  # the manager "dies" before writing task_started
        assert launcher.proc is not None
        launcher.proc.wait(timeout=20)
    finally:
        launcher.reap()
    tid = cand.tid
    result = _result(project, tid)
    assert result and result["status"] == "completed"
    names = [e["event"] for e in project.events(tid)]
    assert names.count("task_started") == 1 and "task_adopted" in names
    assert project.rows(SPAWN_REQUESTS) == []
    assert project.rows(f"T{mgr}.reserved") == []


def test_consumer_sigkill_is_consumer_lost_and_releases_waiters(project, manager):
    tid = project.cli("run", "--no-wait", "--", "sleep", "30").stdout.strip()
    info = wait_for(lambda: _status_json(project, tid), what="task running with a pid")
    waiter = project.popen("result", tid, "--json")
    os.kill(info["pid"], signal.SIGKILL)
    out, err = waiter.communicate(timeout=10)
    assert waiter.returncode != 0, err
    payload = json.loads(out)
    assert payload["status"] == "failed" and payload["reason"] == "consumer_lost"
    res = project.cli("result", tid, "--json", "--timeout", "10")
    assert json.loads(res.stdout)["reason"] == "consumer_lost"


def _status_json(project, tid):
    proc = project.cli("task", "status", tid, "--json")
    if proc.returncode != 0:
        return None
    reply = json.loads(proc.stdout)
    return reply if reply.get("status") == "running" and reply.get("pid") else None


def test_task_whose_manager_and_launcher_died_is_finished_and_retried(project, client, manager):
    marker = project.root / "attempts"
    script = (f'echo $WEFT_ATTEMPT >> {marker}; '
              '[ "$WEFT_ATTEMPT" = 1 ] && sleep 30; echo second')
    task = client.submit(command=["sh", "-c", script], retry={"retries": 1})
    info = wait_for(lambda: running_status(task), what="task running")
    wait_for(lambda: marker.exists() and marker.read_text() == "1\n", what="attempt 1 at work")
    os.killpg(manager.pid, signal.SIGKILL)  # manager and launcher share a process group
    os.killpg(info["pid"], signal.SIGKILL)  # and the task's own group: nothing is left
    wait_for(lambda: not pid_alive(manager.pid), what="manager gone")
    peer = client.workers.start()
    project.track(peer.pid)
    result = task.wait(timeout=30)
    assert result.status == "completed" and result.attempt == 2 and result.stdout == "second\n"
    events = project.events(task.tid)
    retrying = [e for e in events if e["event"] == "task_retrying"]
    assert retrying and retrying[0]["reason"] == "consumer_lost"
    assert marker.read_text().split() == ["1", "2"]
    wait_for(lambda: not _reserved_claims(project), what="claims and work items deleted")


# -- settle_claims on hand-made broker states (fast, no processes) -----------

@pytest.fixture
def broker(client):
    return client.broker


def _claim(client, mgr, **spec_fields):
    from weft.models import SpawnRequest

    spec = client.build_spec(command=["true"], **spec_fields)
    body = SpawnRequest(taskspec=spec).model_dump_json(exclude_none=True)
    mid = client.broker.write(SPAWN_REQUESTS, body)
    client.broker.move_one(SPAWN_REQUESTS, f"T{mgr}.reserved", message_id=mid)
    return str(mid).zfill(19), mid


def _log(broker, tid, event, status, **fields):
    from weft.runtime.batch import HOST

    broker.write("weft.tasks.log", json.dumps({"v": 1, "event": event, "tid": tid,
                                               "status": status, "ts": fields.pop("ts", 0),
                                               "host": HOST, **fields},
                                              separators=(",", ":")))


def test_settle_requeues_never_started_and_drops_settled(client, broker):
    from weft.runtime.batch import Batch
    from weft.runtime.recovery import settle_claims

    dead, me = "1" * 19, "2" * 19
    fresh_tid, fresh_mid = _claim(client, dead)
    done_tid, _ = _claim(client, dead)
    _log(broker, done_tid, "task_completed", "completed", attempt=1)
    tally = settle_claims(broker, Batch(broker), owner_tid=dead, my_tid=me)
    assert (tally.requeued, tally.dropped) == (1, 1)
    assert broker.peek_one(SPAWN_REQUESTS)[1] == fresh_mid  # same id: same TID, same place
    assert broker.peek_one(f"T{dead}.reserved") is None
    assert broker.peek_one(f"T{me}.reserved") is None
    again = settle_claims(broker, Batch(broker), owner_tid=dead, my_tid=me)
    assert again.as_dict() == {"requeued": 0, "finished_lost": 0, "dropped": 0, "waiting": 0}


def test_settle_leaves_a_started_task_whose_process_lives(client, broker, project):
    import subprocess
    import time

    from weft.runtime.batch import Batch
    from weft.runtime.recovery import settle_claims

    dead, me = "1" * 19, "2" * 19
    tid, _ = _claim(client, dead)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as proc:
        try:
            _log(broker, tid, "task_started", "running", attempt=1, pid=proc.pid, ts=time.time())
            tally = settle_claims(broker, Batch(broker), owner_tid=dead, my_tid=me)
            assert tally.waiting == 1 and broker.peek_one(f"T{dead}.reserved") is not None
        finally:
            proc.kill()
    tally = settle_claims(broker, Batch(broker), owner_tid=dead, my_tid=me)
    assert tally.finished_lost == 1
    result = _result(project, tid)
    assert result["status"] == "failed" and result["reason"] == "consumer_lost"
    assert broker.peek_one(f"T{me}.reserved") is None


def test_settle_finishes_what_the_launcher_forked_but_nobody_recorded(client, broker, project):
    from weft.runtime.batch import Batch
    from weft.runtime.recovery import settle_claims

    mgr = "3" * 19
    tid, _ = _claim(client, mgr, retry={"retries": 1})
    tally = settle_claims(broker, Batch(broker), owner_tid=mgr, my_tid=mgr, launched={tid: 1})
    assert tally.finished_lost == 1
    retry = json.loads(broker.peek_one(SPAWN_REQUESTS)[0])
    assert retry["attempt"] == 2 and retry["taskspec"]["tid"] == tid
    assert [e["event"] for e in project.events(tid)] == ["task_retrying"]


def test_dead_manager_on_another_host_waits_for_its_lease(client, broker):
    import time

    from weft.runtime.registry import recoverable

    now = time.time()
    record = {"tid": "4" * 19, "status": "active", "host": "elsewhere", "pid": 1,
              "heartbeat_at": now - 1, "heartbeat_interval": 5.0}
    assert not recoverable(record, now)
    assert recoverable({**record, "heartbeat_at": now - 60}, now)
    here = {**record, "host": __import__("socket").gethostname(), "pid": 2 ** 22 + 7}
    assert recoverable(here, now)  # same host, pid gone: at once
    assert not recoverable({**here, "launcher_pid": os.getpid()}, now)  # its launcher lives


def test_settle_completes_the_event_of_a_result_written_just_before_death(client, broker, project):
    from weft.runtime.batch import Batch
    from weft.runtime.recovery import settle_claims

    dead, me = "5" * 19, "6" * 19
    tid, _ = _claim(client, dead)
    broker.write(f"T{tid}.outbox", json.dumps({"v": 1, "type": "result", "tid": tid,
                                               "status": "completed", "exit_code": 0,
                                               "attempt": 1}))
    batch = Batch(broker)
    tally = settle_claims(broker, batch, owner_tid=dead, my_tid=me)
    batch.flush()
    assert tally.dropped == 1 and tally.requeued == 0
    assert [e["event"] for e in project.events(tid)] == ["task_completed"]
    assert broker.peek_one(SPAWN_REQUESTS) is None
