"""Dependencies between tasks: ``after=`` / ``weft run --after``, with real managers.

The end-to-end tests run on SQLite and, when ``WEFT_TEST_PG_DSN`` names a
server, on PostgreSQL (the ``backend`` fixture of test_backend_contract).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Project, wait_for
from test_backend_contract import Backend, backend  # noqa: F401 - the fixture

from weft.broker import Broker
from weft.client.client import WeftClient
from weft.names import SPAWN_CANCELLING, SPAWN_REQUESTS, SPAWN_WAITING, task_queue
from weft.runtime.dependencies import Resolver, verdict

PY = sys.executable
STAMP = "import time,sys; time.sleep(float(sys.argv[1])); print(time.time())"


@pytest.fixture
def api(backend: Backend, project: Project) -> Iterator[WeftClient]:  # noqa: F811
    c = WeftClient(project.root)
    try:
        info = c.workers.start()
        project.track(info.pid)
        yield c
    finally:
        c.close()


def _stamp(client: WeftClient, seconds: float = 0.0, **opts: Any) -> Any:
    """A task that sleeps, then prints the time it finished."""
    return client.submit(command=[PY, "-c", STAMP, str(seconds)], **opts)


def _ended_at(task: Any) -> float:
    return float(task.result(timeout=60).stdout.strip())


def _started_at(task: Any) -> float:
    return float(task.result(timeout=60).started_at)


# -- the verdict: a pure function -------------------------------------------------
@pytest.mark.parametrize("mode,ended,expected", [
    ("all", {}, "wait"),
    ("all", {"a": "completed"}, "wait"),
    ("all", {"a": "completed", "b": "completed"}, "release"),
    ("all", {"b": "failed"}, "cancel"),
    ("all", {"a": "completed", "b": "rejected"}, "cancel"),
    ("any", {}, "wait"),
    ("any", {"a": "failed"}, "wait"),
    ("any", {"a": "failed", "b": "completed"}, "release"),
    ("any", {"a": "cancelled", "b": "timeout"}, "cancel"),
    ("finished", {"a": "failed"}, "wait"),
    ("finished", {"a": "failed", "b": "killed"}, "release"),
    ("finished", {"a": "completed", "b": "completed"}, "release"),
])
def test_verdict(mode: str, ended: dict[str, str], expected: str) -> None:
    action, reason = verdict(["a", "b"], mode, ended)
    assert action == expected
    assert (reason is not None) == (expected == "cancel")


def test_the_reason_names_the_failed_dependency() -> None:
    assert verdict(["a", "b"], "all", {"b": "failed"}) == ("cancel", "dependency b failed")
    assert verdict(["a", "b"], "any", {"a": "failed", "b": "killed"}) == (
        "cancel", "dependencies a, b failed")


# -- end to end, on every backend ---------------------------------------------------
def test_a_chain_runs_in_order_and_waits_as_queued(api: WeftClient) -> None:
    a = _stamp(api, 0.8)
    b = _stamp(api, after=[a])
    c = _stamp(api, after=[b.tid])
    info = b.status()
    assert info["status"] == "queued" and info["reason"] == f"waiting for {a.tid}"
    assert c.status()["reason"] == f"waiting for {b.tid}"
    assert _started_at(b) >= _ended_at(a)
    assert _started_at(c) >= _ended_at(b)
    assert c.result(timeout=60).ok


def test_a_diamond_joins_on_both_branches(api: WeftClient) -> None:
    top = _stamp(api, 0.2)
    left = _stamp(api, 0.6, after=[top])
    right = _stamp(api, 0.1, after=[top])
    bottom = _stamp(api, after=[left, right])
    assert _started_at(left) >= _ended_at(top) and _started_at(right) >= _ended_at(top)
    assert _started_at(bottom) >= max(_ended_at(left), _ended_at(right))


def test_a_failure_cancels_everything_downstream_at_once(api: WeftClient) -> None:
    a = api.submit(command=[PY, "-c", "import sys; sys.exit(3)"])
    b = _stamp(api, after=[a])
    c = _stamp(api, after=[b])
    d = _stamp(api, after=[c, b])
    finished = _stamp(api, after_mode="finished", after=[a])
    for task, cause in ((b, a), (c, b), (d, c)):
        res = task.wait(timeout=60)
        assert res.status == "cancelled"
        assert res.error == f"dependency {cause.tid} failed"
        assert res.started_at is None  # it never ran
    assert a.wait(timeout=60).status == "failed"
    assert finished.result(timeout=60).ok  # --after-finished: whatever the outcome
    events = [e for e in b.events() if e["event"] == "task_cancelled"]
    assert events and events[-1]["reason"] == f"dependency {a.tid} failed"


def test_after_any_needs_one_success(api: WeftClient) -> None:
    bad = api.submit(command=[PY, "-c", "import sys; sys.exit(1)"])
    good = _stamp(api, 0.3)
    either = _stamp(api, after=[bad, good], after_mode="any")
    assert either.result(timeout=60).ok
    worse = api.submit(command=[PY, "-c", "import sys; sys.exit(1)"])
    neither = _stamp(api, after=[bad, worse], after_mode="any")
    assert neither.wait(timeout=60).status == "cancelled"


# -- submit-time checks and control -----------------------------------------------------
def test_an_unknown_tid_is_refused_with_exit_2(project: Project) -> None:
    assert project.cli("init").returncode == 0
    proc = project.cli("run", "--no-wait", "--after", "1234567890123456789", "--", "echo", "x")
    assert proc.returncode == 2, proc.stderr
    assert "unknown task" in proc.stderr and "Traceback" not in proc.stderr
    assert project.rows(SPAWN_WAITING) == [] and project.rows(SPAWN_REQUESTS) == []
    both = project.cli("run", "--after", "1234567890123456789", "--after-any",
                       "1234567890123456789", "echo")
    assert both.returncode == 2 and "only one of" in both.stderr


def test_cli_after_flags_wait_and_release(project: Project) -> None:
    first = project.cli("run", "--no-wait", "--", PY, "-c", "import time; time.sleep(0.5)")
    assert first.returncode == 0, first.stderr
    tid = first.stdout.strip()
    try:
        second = project.cli("run", "--after", tid[-8:], "--", "echo", "after")
        assert second.returncode == 0, second.stderr
        assert second.stdout == "after\n"
        spec = [e for e in project.events() if e.get("event") == "task_spawning"]
        assert spec, "the dependent ran through a manager"
    finally:
        project.cli("worker", "stop", "--all")


def test_stop_of_a_waiting_task_cancels_it_and_its_dependents(api: WeftClient) -> None:
    blocker = _stamp(api, 30)
    waiting = _stamp(api, after=[blocker])
    downstream = _stamp(api, after=[waiting])
    reply = waiting.stop()
    assert reply["status"] == "cancelled"
    res = downstream.wait(timeout=30)
    assert res.status == "cancelled" and res.error == f"dependency {waiting.tid} failed"
    blocker.stop()


def test_a_cancellation_interrupted_by_a_crash_is_finished_by_the_sweep(project: Project) -> None:
    """A resolver that died between taking a request and writing its result."""
    with WeftClient(project.root, auto_start=False) as api:
        broker: Broker = api.broker
        dep = broker.write("elsewhere", "x")  # any id: only the request matters here
        body = json.dumps({"v": 1, "taskspec": {"command": ["true"], "after": [str(dep).zfill(19)]}})
        mid = broker.write(SPAWN_CANCELLING, body)
        resolver = Resolver(broker, manager_tid="0" * 19)
        resolver.poll(now=0.0)  # first sight: maybe a live resolver is mid-way
        assert broker.peek_one(task_queue(str(mid).zfill(19), "outbox")) is None
        resolver.poll(now=10.0)  # still there one sweep later: finish it
        result = json.loads(broker.peek_one(task_queue(str(mid).zfill(19), "outbox"))[0])
        assert result["status"] == "cancelled"
        assert broker.peek_one(SPAWN_CANCELLING) is None
        wait_for(lambda: api.task(str(mid)).status()["status"] == "cancelled",
                 what="the cancelled status")


def test_dependencies_survive_their_manager_dying(project: Project, client: WeftClient) -> None:
    """The manager running A dies with A; another recovers A (retried) and B runs after it."""
    import os
    import signal

    from conftest import pid_alive

    first = client.workers.start()
    project.track(first.pid)
    code = "import os,time; time.sleep(60 if os.environ['WEFT_ATTEMPT'] == '1' else 0)"
    a = client.submit(command=[PY, "-c", code], retry={"retries": 1, "retry_on": ["consumer_lost"]})
    b = _stamp(client, after=[a])
    info = wait_for(lambda: (s := a.status())["status"] == "running" and s.get("pid") and s,
                    timeout=30, what="A running")
    record = project.registry()[first.tid]
    os.killpg(int(info["pid"]), signal.SIGKILL)
    for pid in (record["pid"], record["launcher_pid"]):
        os.kill(int(pid), signal.SIGKILL)
    wait_for(lambda: not pid_alive(int(record["pid"])), what="the manager gone")
    assert b.status()["status"] == "queued"  # still waiting: nothing lost with the manager
    project.track(client.workers.start().pid)
    assert a.result(timeout=60).attempt == 2
    assert _started_at(b) >= a.wait().finished_at


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_dependencies_across_two_hosts(backend: Backend, project: Project) -> None:  # noqa: F811
    """Dependencies on tasks that ran on other hosts are judged from the shared broker."""
    import subprocess

    from test_backend_contract import SECOND_HOST, _on_second_host

    if subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode != 0:
        pytest.skip("a second host needs a UTS namespace (unshare --uts, as root)")
    here = project.cli("worker", "start", "--max-concurrency", "1")
    there = _on_second_host(project, "worker", "start", "--max-concurrency", "1")
    assert here.returncode == 0 and there.returncode == 0, here.stderr + there.stderr
    try:
        with WeftClient(project.root, auto_start=False) as api:
            slow = [api.submit(command=["sh", "-c", "sleep 1.5; hostname"]) for _ in range(2)]
            failing = api.submit(command=["sh", "-c", "sleep 1.6; exit 1"])
            joined = api.submit(command=["hostname"], after=slow)
            doomed = api.submit(command=["true"], after=[joined, failing])
            hosts = sorted(t.result(timeout=60).stdout.strip() for t in slow)
            assert len(set(hosts)) == 2 and SECOND_HOST in hosts  # one on each host
            ran = joined.result(timeout=60)
            assert ran.started_at >= max(t.wait().finished_at for t in slow)
            res = doomed.wait(timeout=60)
            assert res.status == "cancelled" and res.error == f"dependency {failing.tid} failed"
    finally:
        project.cli("worker", "stop", "--all")


def test_a_malformed_waiting_request_is_dead_lettered_and_the_manager_goes_on(
        project: Project, client: WeftClient, manager: Any) -> None:
    bad = client.broker.write(SPAWN_WAITING, '{"v": 1, "taskspec": {"after": "nope"}}')
    res = client.task(str(bad).zfill(19)).wait(timeout=30)
    assert res.status == "rejected" and "taskspec.after" in (res.error or "")
    assert [r["taskspec"]["after"] for r in project.rows("weft.spawn.rejected")] == ["nope"]
    assert client.submit(command=["true"], after=[_stamp(client)]).result(timeout=30).ok
