"""One owner per attempt (issue 11, items 1-4): the fencing rule, with real processes.

- nothing one message or one task does ends a manager (deep nesting, a
  result over the broker's size limit, any fuzzed spawn request);
- a task's TID is its spawn message's id: a request naming another tid is
  refused before anything runs;
- a manager frozen past its lease, whose claims a peer recovered, writes
  nothing for them when it wakes: each attempt runs once, one result;
- STOP while a task waits for its retry cancels the waiting attempt at once.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from conftest import pid_alive, running_status, wait_for

from weft.models import TaskState
from weft.names import SPAWN_REJECTED, SPAWN_REQUESTS


def _results(project, tid):
    return [m for m in project.rows(f"T{tid}.outbox") if m.get("type") == "result"]


def _ping(client, tid):
    reply = client.task(tid).ping(timeout=15)
    assert reply["reply"] == "PONG" and reply.get("details", {}).get("answered_by") != "client"
    return reply


# -- item 1: one message, one task, never the manager ----------------------------
def test_deeply_nested_request_is_dead_lettered_and_the_manager_carries_on(project, client,
                                                                          manager):
    tid = str(client.broker.write(SPAWN_REQUESTS, "[" * 3000 + "]" * 3000)).zfill(19)
    result = client.task(tid).wait(timeout=20)
    assert result.status == "rejected" and result.reason == "invalid_request"
    assert "nested too deeply" in (result.error or "") or "not JSON" in (result.error or "")
    assert [e["event"] for e in project.events(tid)] == ["task_rejected"]
    assert client.broker.count(SPAWN_REJECTED) == 1
    _ping(client, manager.tid)
    assert client.submit(command=["true"]).wait(timeout=20).status == "completed"


def test_a_result_over_the_message_limit_does_not_end_the_manager(project, client, manager):
    """An 11 MB value (over the broker's 10 MiB message limit) ends that task one way
    (stored aside as a blob, or failed with a reason) and the manager carries on."""
    (project.root / "bigjobs.py").write_text("def big(n):\n    return 'x' * n\n")
    other = client.submit(command=["sh", "-c", "sleep 1; echo fine"])
    big = client.submit(function="bigjobs:big", args=[11 << 20])
    result = big.wait(timeout=60)
    assert result.status == "completed" or result.reason == "result_too_large", result
    done = other.wait(timeout=30)
    assert done.status == "completed" and done.stdout.strip() == "fine"
    _ping(client, manager.tid)
    assert len(_results(project, big.tid)) == 1
    assert not project.rows(f"T{manager.tid}.reserved")


def test_a_result_message_the_broker_cannot_hold_fails_that_task(project, client):
    """The last guard: a result body over the limit fails the task (result_too_large)."""
    from weft.models import SpawnRequest
    from weft.runtime.batch import Batch
    from weft.runtime.consumer import Consumer
    from weft.runtime.intake import parse
    from weft.runtime.outcome import Outcome

    broker = client.broker
    mgr = str(broker.generate_id())
    body = SpawnRequest(taskspec=client.build_spec(command=["true"])).model_dump_json()
    mid = broker.write(SPAWN_REQUESTS, body)
    broker.move_one(SPAWN_REQUESTS, f"T{mgr}.reserved", message_id=mid)
    cand = parse(body, mid)

    class Host:
        manager_tid = mgr

    batch = Batch(broker)
    consumer = Consumer(cand.spec, request=cand.request, batch=batch, host=Host(), claim_id=mid)
    consumer.spool.chunk = 1 << 40  # as if no blob store took it: the value stays inline
    consumer.finish(Outcome(TaskState.COMPLETED, 0, value="x" * (11 << 20)))
    batch.flush()
    (result,) = _results(project, cand.tid)
    assert result["status"] == "failed" and result["reason"] == "result_too_large"
    assert not project.rows(f"T{mgr}.reserved")


# -- item 2: a task's TID is its spawn message's id --------------------------------
def _explicit(client, tid, command=("echo", "again")):
    body = json.dumps({"v": 1, "taskspec": {"command": list(command), "tid": tid}})
    return str(client.broker.write(SPAWN_REQUESTS, body)).zfill(19)


def test_a_request_naming_another_tid_is_rejected_before_anything_runs(project, client,
                                                                       manager):
    first = client.submit(command=["echo", "once"])
    assert first.wait(timeout=20).status == "completed"
    fresh = str(client.broker.generate_id())
    requests = {
        "finished task": _explicit(client, first.tid),
        "manager": _explicit(client, manager.tid),
        "duplicate a": _explicit(client, fresh),
        "duplicate b": _explicit(client, fresh),
    }
    for what, mid in requests.items():
        result = client.task(mid).wait(timeout=20)
        assert result.status == "rejected", what
        assert "is not this request's id" in (result.error or ""), what
    # Nothing ran and nothing was written under the named tids.
    assert len(_results(project, first.tid)) == 1
    assert [e["event"] for e in project.events(first.tid)].count("task_completed") == 1
    assert not _results(project, manager.tid) and not _results(project, fresh)
    assert not any(e["event"] == "task_started" for e in project.events(fresh))
    assert not project.rows(SPAWN_REQUESTS)
    stop = project.cli("worker", "stop", manager.tid, "--timeout", "20")
    assert stop.returncode == 0, stop.stderr


def test_a_retry_rewritten_under_the_same_id_is_read_afresh(project, client):
    """A retry keeps its message id: a manager that parsed attempt 1 while it was
    queued must see attempt 2 (its delay, its count), not its cached parse."""
    from weft.models import SpawnRequest
    from weft.runtime import attempt
    from weft.runtime.batch import Batch
    from weft.runtime.intake import Intake

    broker = client.broker
    spec = client.build_spec(command=["true"], retry={"retries": 1})
    mid = broker.write(SPAWN_REQUESTS, SpawnRequest(taskspec=spec).model_dump_json())
    onlooker = Intake(broker, Batch(broker), manager_tid="1" * 19)
    assert [c.request.attempt for c in onlooker.runnable(time.time())] == [1]
    claim = attempt.claim(broker, mid, "2" * 19)
    assert claim is not None
    cand = onlooker.runnable(time.time())
    assert cand == []
    retry = SpawnRequest(taskspec=spec.model_copy(update={"tid": claim.tid}), attempt=2,
                         not_before=time.time() + 60)
    batch = Batch(broker)
    attempt.settle_retry(batch, claim, request=retry, work_id=None,
                         event=lambda: batch.event("task_retrying", claim.tid, "queued"),
                         on_lost=lambda: pytest.fail("the claim was ours"))
    batch.flush()
    assert onlooker.runnable(time.time()) == []  # not due: its delay is honoured
    later = onlooker.runnable(time.time() + 120)
    assert [(c.message_id, c.request.attempt) for c in later] == [(mid, 2)]


# -- item 3: a frozen manager's claims, recovered by a peer, stay the peer's --------
def test_a_frozen_manager_settles_nothing_a_peer_recovered(project, client):
    first = client.workers.start()
    project.track(first.pid)
    peer = client.workers.start()  # started now (slow under load), paused: claims nothing yet
    project.track(peer.pid)
    assert client.task(peer.tid).pause(timeout=15)["ok"]
    tasks = [client.submit(command=["sh", "-c", "sleep 1.5"], retries=1) for _ in range(3)]

    def started_on_first():
        events = project.events()
        return all(any(e["event"] == "task_started" and e["tid"] == t.tid
                       and e.get("manager_tid") == first.tid for e in events) for t in tasks)

    wait_for(started_on_first, what="every task started on the first manager")
    launcher = int(project.registry()[first.tid]["launcher_pid"])
    os.kill(first.pid, signal.SIGSTOP)
    try:
        os.kill(launcher, signal.SIGKILL)
        assert client.task(peer.tid).resume(timeout=15)["ok"]
        # The peer sees the lease expire, waits for the task processes to end,
        # then finishes attempt 1 as consumer_lost and runs attempt 2 itself.
        results = [t.wait(timeout=60) for t in tasks]
        assert all(r.status == "completed" and r.attempt == 2 for r in results), results
    finally:
        os.kill(first.pid, signal.SIGCONT)

    # A PONG means the woken manager has run a whole step: it found its launcher
    # gone and settled (or, now, failed to settle) every attempt it held.
    _ping(client, first.tid)
    assert not project.rows(SPAWN_REQUESTS), "no second retry was queued"
    assert not project.rows(f"T{first.tid}.reserved") and not project.rows(f"T{peer.tid}.reserved")
    for task in tasks:
        events = project.events(task.tid)
        started = [e["attempt"] for e in events if e["event"] == "task_started"]
        assert sorted(started) == [1, 2], events  # each attempt ran exactly once
        assert len(_results(project, task.tid)) == 1
        assert [e["event"] for e in events].count("task_retrying") == 1

    def lost_everywhere():
        lost = [e for e in project.events() if e["event"] == "claim_lost"]
        return {e["tid"] for e in lost} >= {t.tid for t in tasks} and lost

    lost = wait_for(lost_everywhere, timeout=20, what="the woken manager logs claim_lost")
    assert all(e.get("manager_tid") == first.tid for e in lost)
    assert pid_alive(first.pid)


def test_a_running_attempt_whose_claim_was_taken_is_killed_and_writes_nothing(project, client,
                                                                              manager):
    """The heartbeat read-back: a claim gone from the owner's reserved queue (as after
    a peer's recovery) stops the attempt within a beat, and its result is never written."""
    task = client.submit(command=["sleep", "30"])
    pid = wait_for(lambda: (running_status(task) or {}).get("pid"), what="task running")
    reserved = f"T{manager.tid}.reserved"
    assert client.broker.move_one(reserved, "Tpeer.reserved", message_id=int(task.tid))
    wait_for(lambda: any(e["event"] == "claim_lost" for e in project.events(task.tid)),
             what="claim_lost logged")
    wait_for(lambda: not pid_alive(pid), timeout=10, what="the attempt's process killed")
    _ping(client, manager.tid)  # one more step: anything it meant to write is flushed
    assert not _results(project, task.tid)
    assert not any(e.get("status") in ("failed", "killed", "cancelled")
                   for e in project.events(task.tid))


def test_a_forked_task_runs_nothing_until_its_start_is_on_record(project, client):
    """The go-ahead: a task process waits until its manager has committed task_started.
    Its launcher dying first (with the manager, or frozen and killed) leaves a process
    that exits without running the target, never one the log says never started."""
    from weft.models import SpawnRequest
    from weft.runtime.batch import Batch
    from weft.runtime.consumer import Consumer
    from weft.runtime.intake import parse
    from weft.runtime.launcher import Launcher

    broker = client.broker
    mgr = str(broker.generate_id())
    spec = client.build_spec(command=["sh", "-c", "touch ran"])
    body = SpawnRequest(taskspec=spec).model_dump_json(exclude_none=True)
    mid = broker.write(SPAWN_REQUESTS, body)
    cand = parse(body, mid)

    class Host:
        manager_tid = mgr

    consumer = Consumer(cand.spec, request=cand.request, batch=Batch(broker), host=Host(),
                        claim_id=mid)
    launcher = Launcher(root=str(project.root), manager_tid=mgr)
    launcher.start()
    assert launcher.proc is not None
    project.track(launcher.pid)
    try:
        env, unset = consumer.child_env(str(project.root))
        launcher.launch(consumer.launch_op(env, unset, stdin=None))
        frames: list[dict] = []
        wait_for(lambda: frames.extend(launcher.receive()) or
                 any(f["ev"] == "started" for f in frames), what="started frame")
        pid = next(f["pid"] for f in frames if f["ev"] == "started")
        project.track(pid)
        os.kill(launcher.pid, signal.SIGKILL)  # no go-ahead ever comes
        wait_for(lambda: not pid_alive(pid), timeout=10, what="the waiting task exits")
    finally:
        launcher.close()
        launcher.reap()
    assert not (project.root / "ran").exists()


# -- item 4: STOP during a retry delay -----------------------------------------------
def test_stop_during_a_retry_delay_cancels_the_waiting_attempt(project, manager):
    tid = project.cli("run", "--no-wait", "--retries", "2", "--retry-delay", "10", "--",
                      "false").stdout.strip()
    wait_for(lambda: any(e["event"] == "task_retrying" for e in project.events(tid)),
             what="attempt 1 failed and the retry waits")
    began = time.monotonic()
    stop = project.cli("task", "stop", tid, "--json")
    assert stop.returncode == 0, stop.stderr
    assert time.monotonic() - began < 10
    # Gone the moment stop returned: no attempt can start after this.
    assert not project.rows(SPAWN_REQUESTS)
    assert not project.rows(f"T{manager.tid}.reserved")
    results = _results(project, tid)
    assert len(results) == 1 and results[0]["status"] == "cancelled"
    assert results[0]["attempt"] == 2
    events = [e["event"] for e in project.events(tid)]
    assert events[-1] == "task_cancelled" and events.count("task_started") == 1
    res = project.cli("result", tid, "--json", "--timeout", "5")
    assert json.loads(res.stdout)["status"] == "cancelled"


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
