"""Sweeps: submit_many and its Run handle, per-item map options,
return_exceptions, stopping what an abandoned map started, and
Task.add_done_callback. Real manager, real tasks."""

from __future__ import annotations

import threading

import pytest
from conftest import wait_for
from jobs_module import write_jobs

from weft import InvalidSpec, TaskFailed


@pytest.fixture
def jobs(project):
    return write_jobs(project.root)


def test_submit_many_gives_a_run_with_ordered_results_and_failures(project, client, jobs):
    run = client.submit_many([{"args": [i]} for i in range(4)] + [{"function": "pkg.jobs:boom"}],
                             function="pkg.jobs:square", request_id="sweep-1")
    assert len(run) == 5 and len(run.tasks) == 5
    values = run.results(timeout=60, return_exceptions=True)
    assert values[:4] == [0, 1, 4, 9]
    assert isinstance(values[4], TaskFailed) and "kaboom-42" in str(values[4])
    with pytest.raises(TaskFailed, match="kaboom-42"):
        run.results(timeout=60)
    finished = list(run.as_completed(timeout=60))
    assert sorted(t.tid for t in finished) == sorted(t.tid for t in run.tasks)
    assert {row["tid"] for row in client.tasks(request_id="sweep-1")} == {t.tid for t in run}


def test_submit_many_checks_every_item_before_queueing_any(client, jobs):
    with pytest.raises(InvalidSpec, match="item 1: .*resources"):
        client.submit_many([{"args": [1]}, {"args": [2], "resources": {"vram_mb": 5}}],
                           function="pkg.jobs:square")
    assert client.tasks() == []


def test_run_cancel_stops_queued_and_running_tasks(project, client, jobs, monkeypatch):
    monkeypatch.setenv("WEFT_MAX_CONCURRENCY", "1")
    never = str(project.root / "never")
    run = client.submit_many([{"args": [never]} for _ in range(4)],
                             function="pkg.jobs:wait_for_file")
    wait_for(lambda: run.tasks[0].status()["status"] == "running", timeout=30,
             what="the first task to run")
    stopped = run.cancel()
    assert {t.tid for t in stopped} == {t.tid for t in run.tasks}
    statuses = [t.wait(timeout=30).status for t in run.tasks]
    assert statuses == ["cancelled"] * 4
    assert run.done() and run.cancel() == []


def test_map_options_per_item_and_return_exceptions(project, client, jobs):
    results = list(client.map("pkg.jobs:fail_on", range(5), timeout=60, return_exceptions=True,
                              options=lambda item: {"name": f"item-{item}"}))
    assert results[:3] == [0, 1, 2] and results[4] == 4
    assert isinstance(results[3], TaskFailed) and "bad item 3" in str(results[3])
    names = sorted(row.get("name") or "" for row in client.tasks())
    assert names == [f"item-{i}" for i in range(5)]


def test_map_stops_the_tasks_it_started_when_abandoned(project, client, jobs, monkeypatch):
    never = str(project.root / "never")
    items = [None, never, never, never]
    results = client.map("pkg.jobs:wait_for_file",
                         [str(project.root) if i is None else i for i in items], timeout=60)
    assert next(results) is None
    results.close()  # the caller stops early, as a ``break`` would
    rows = [row for row in client.tasks() if row["status"] != "completed"]
    assert len(rows) == 3
    for row in rows:
        assert client.task(row["tid"]).wait(timeout=30).status == "cancelled"


def test_add_done_callback_runs_once_the_task_ended(client, jobs):
    task = client.submit(function="pkg.jobs:square", args=[5])
    seen: list[tuple[str, int]] = []
    called = threading.Event()

    def record(t):
        seen.append((t.tid, t.result(timeout=0).value))
        called.set()

    task.add_done_callback(record)
    assert called.wait(60)
    assert seen == [(task.tid, 25)]
    # Added after the end: called at once (on the watcher thread).
    again = threading.Event()
    task.add_done_callback(lambda t: again.set())
    assert again.wait(10)
