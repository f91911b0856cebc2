"""The Task handle: output as it arrives, events in order, control, short TIDs."""

from __future__ import annotations

import pytest
from conftest import pid_alive, wait_for
from jobs_module import write_jobs

from weft import AmbiguousTid, NotFound, TaskFailed, UsageError, WaitTimeout
from weft.models import TaskState, can_transition


@pytest.fixture
def jobs(project):
    return write_jobs(project.root)


def _running(task):
    info = task.status()
    return info if info["status"] == "running" and info.get("pid") else None


def _proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def test_output_streams_chunks_while_the_task_runs(project, client, manager):
    go = project.root / "go"
    task = client.submit(command=["sh", "-c", f"echo one; echo warn >&2; "
                                              f"while [ ! -f {go} ]; do sleep 0.02; done; echo two"])
    chunks = task.output(timeout=30)
    seen = []
    for chunk in chunks:
        seen.append(chunk)
        if b"".join(c["data"] for c in seen if c["stream"] == "stdout") == b"one\n" and \
                any(c["stream"] == "stderr" for c in seen):
            break
    # We hold output the task wrote while it is still blocked: it streamed.
    assert not task.done()
    go.touch()
    seen.extend(chunks)
    assert b"".join(c["data"] for c in seen if c["stream"] == "stdout") == b"one\ntwo\n"
    assert b"".join(c["data"] for c in seen if c["stream"] == "stderr") == b"warn\n"
    assert [c["seq"] for c in seen] == sorted(c["seq"] for c in seen)
    assert task.result(timeout=10).stdout == "one\ntwo\n"


def test_output_timeout_raises(project, client, manager, jobs):
    task = client.submit(function="pkg.jobs:wait_for_file", args=[str(project.root / "never")])
    with pytest.raises(WaitTimeout):
        list(task.output(timeout=0.3))
    task.kill()


def test_events_are_in_order_and_follow_the_lifecycle(project, client, manager):
    task = client.submit(command=["true"], name="ordered")
    task.result(timeout=30)
    events = task.events()
    names = [e["event"] for e in events]
    assert "task_spawning" in names
    assert names[-2:] == ["task_started", "task_completed"]
    assert all(e["tid"] == task.tid for e in events)
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    state = TaskState.QUEUED
    for event in events:
        nxt = TaskState(event["status"])
        assert nxt == state or can_transition(state, nxt), (state, nxt)  # several events per state
        state = nxt
    assert events[-1]["manager_tid"] == manager.tid


def test_ping_reports_pong_and_round_trip(project, client, manager, jobs):
    go = project.root / "go"
    task = client.submit(function="pkg.jobs:wait_for_file", args=[str(go)])
    info = wait_for(lambda: _running(task), what="task running")
    reply = task.ping(timeout=10)
    assert reply["ok"] is True and reply["reply"] == "PONG"
    assert reply["tid"] == task.tid and reply["pid"] == info["pid"]
    assert reply["status"] == "running"
    assert 0 < reply["rtt_ms"] < 10_000
    go.touch()
    task.result(timeout=30)


def test_pause_resume_then_finish(project, client, manager, jobs):
    go = project.root / "go"
    task = client.submit(function="pkg.jobs:wait_for_file", args=[str(go), "finished"])
    pid = wait_for(lambda: _running(task), what="task running")["pid"]
    assert task.pause()["reply"] == "paused"
    wait_for(lambda: _proc_state(pid) == "T", what="stopped process")
    assert task.status()["status"] == "paused"
    go.touch()
    with pytest.raises(WaitTimeout):
        task.wait(timeout=0.3)  # paused: it cannot see the file
    assert task.resume()["reply"] == "resumed"
    assert task.result(timeout=30).value == "finished"
    names = [e["event"] for e in task.events()]
    assert names.index("task_paused") < names.index("task_resumed") < names.index("task_completed")


def test_stop_cancels_and_kill_kills(project, client, manager, jobs):
    never = str(project.root / "never")
    stopped = client.submit(function="pkg.jobs:wait_for_file", args=[never])
    killed = client.submit(command=["sh", "-c", "sleep 300 & sleep 300; wait"])
    pids = [wait_for(lambda t=t: _running(t), what="running")["pid"] for t in (stopped, killed)]
    assert stopped.stop()["ok"] is True
    assert killed.kill()["ok"] is True
    with pytest.raises(TaskFailed) as info:
        stopped.result(timeout=30)
    assert info.value.status == "cancelled"
    assert killed.wait(timeout=30).status == "killed"
    for pid in pids:
        wait_for(lambda p=pid: not pid_alive(p), what="task process gone")
    # A finished task is answered, not re-signalled.
    again = killed.kill()
    assert again["reply"] == "already killed" and again["status"] == "killed"
    ping = stopped.ping()  # nothing runs any more: no PONG, the final status instead
    assert ping["alive"] is False and ping["reply"] is None and ping["status"] == "cancelled"


def test_task_handle_from_full_short_and_int_tids(project, client, manager):
    task = client.submit(command=["echo", "by-tid"])
    task.result(timeout=30)
    for given in (task.tid, task.tid[-10:], "T" + task.tid, int(task.tid)):
        other = client.task(given)
        assert other == task and other.tid == task.tid
        assert other.result().stdout == "by-tid\n"
    assert client.task(manager.tid[-10:]).tid == manager.tid
    assert len({task, client.task(task.tid)}) == 1


def test_unknown_and_malformed_tids(project, client, manager):
    with pytest.raises(NotFound):
        client.task("0000000001")
    with pytest.raises(UsageError):
        client.task("abc")
    with pytest.raises(UsageError):
        client.task("123")


def test_ambiguous_short_tid(project, client):
    # Two tasks whose TIDs share their last 9 digits (queues made by hand).
    for tid in ("1111111111222222222", "3333333333222222222"):
        client.queues.write(f"T{tid}.ctrl_in", "{}")
    with pytest.raises(AmbiguousTid, match="matches 2"):
        client.task("222222222")
    assert client.task("3222222222").tid == "3333333333222222222"


def test_stop_of_a_queued_task_cancels_it(project):
    from weft import WeftClient

    with WeftClient(project.root, auto_start=False) as client:
        task = client.submit(command=["true"], request_id="rq-queued", name="never-ran")
        assert task.status()["status"] == "queued"
        reply = task.stop()
        assert reply["ok"] is True and reply["status"] == "cancelled"
        assert task.wait(timeout=5).status == "cancelled"
        events = task.events()
        assert [e["event"] for e in events] == ["task_submitted", "task_cancelled"]
        assert events[0]["request_id"] == "rq-queued" and events[0]["name"] == "never-ran"
        assert client.workers.list() == []
