"""Retries (every attempt visible, same TID) and delayed starts (not_before)."""

from __future__ import annotations

import json
import time

from conftest import wait_for

COUNTING = ('n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; '
            'echo "try $n"; [ $n -ge 3 ]')


def test_fails_twice_then_succeeds_after_exactly_three_attempts(project, manager):
    proc = project.cli("run", "--json", "--retries", "2", "--retry-delay", "0.2", "--",
                       "sh", "-c", COUNTING)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "completed" and result["attempt"] == 3
    assert result["stdout"] == "try 3\n"  # the final attempt's output only
    assert (project.root / "count").read_text().strip() == "3"
    events = project.events(result["tid"])
    started = [e for e in events if e["event"] == "task_started"]
    assert [e["attempt"] for e in started] == [1, 2, 3]
    retrying = [e for e in events if e["event"] == "task_retrying"]
    assert [e["details"]["next_attempt"] for e in retrying] == [2, 3]
    assert [e["event"] for e in events].count("task_completed") == 1
    for before, after in zip(retrying, started[1:], strict=True):
        assert after["ts"] - before["ts"] >= 0.2  # the delay was honoured


def test_retry_on_limits_what_is_retried(project, client, manager):
    task = client.submit(command=["sh", "-c", "exit 3"],
                         retry={"retries": 3, "retry_on": ["timeout"]})
    result = task.wait(timeout=30)
    assert result.status == "failed" and result.attempt == 1


def test_backoff_grows_the_delay(project, client, manager):
    task = client.submit(command=["false"], retry={"retries": 2, "delay": 0.1, "backoff": 3})
    result = task.wait(timeout=30)
    assert result.attempt == 3 and result.status == "failed"
    delays = [e["details"]["delay"] for e in task.events() if e["event"] == "task_retrying"]
    assert delays == [0.1, 0.30000000000000004] or delays == [0.1, 0.3]


def test_delay_defers_the_start(project, client, manager):
    submitted = time.time()
    task = client.submit(command=["true"], delay=1.0)
    result = task.wait(timeout=30)
    assert result.status == "completed"
    assert result.started_at - submitted >= 1.0


def test_delayed_requests_at_the_head_do_not_block_the_rest(project, client, manager):
    client.auto_start = False
    # More delayed requests than one dispatch window, all ahead of a ready one.
    delayed = [client.submit(command=["true"], delay=30) for _ in range(70)]
    ready = client.submit(command=["true"])
    assert ready.wait(timeout=20).status == "completed"
    assert not any(t.done() for t in delayed)
    assert len(project.rows("weft.spawn.requests")) == 70


def test_waiting_for_a_delay_does_not_busy_loop(project, client, manager):
    import psutil

    client.submit(command=["true"], delay=60)
    mgr = psutil.Process(manager.pid)
    wait_for(lambda: any(e.get("event") == "manager_started" for e in project.events()),
             what="manager up")
    before = sum(mgr.cpu_times()[:2])
    time.sleep(2.0)  # measuring an interval, not synchronising
    used = sum(mgr.cpu_times()[:2]) - before
    assert used < 0.6, f"manager used {used:.2f}s CPU in 2s while waiting"
