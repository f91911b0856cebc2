"""client.map and client.as_completed: many tasks, bounded, ordered."""

from __future__ import annotations

import pytest
from jobs_module import write_jobs

from weft import TaskFailed, UsageError, WaitTimeout


@pytest.fixture
def jobs(project):
    return write_jobs(project.root)


def test_map_fifty_squares_in_order(project, client, jobs):
    assert list(client.map("pkg.jobs:square", range(50), timeout=90)) == [i * i for i in range(50)]


def test_map_keeps_input_order_when_later_items_finish_first(project, client, manager, jobs):
    assert list(client.map("pkg.jobs:slow_inverse", range(5), timeout=60)) == [0, 1, 2, 3, 4]


def test_map_bounds_tasks_in_flight(project, client, manager, jobs):
    pulled = []

    def items():
        for i in range(12):
            pulled.append(i)
            yield i

    for index, value in enumerate(client.map("pkg.jobs:square", items(), timeout=60,
                                             max_in_flight=3)):
        assert value == index * index
        # Result `index` arrives when at most 3 tasks beyond the ones we got were submitted.
        assert len(pulled) <= index + 3
    assert len(pulled) == 12


def test_map_passes_task_options(project, client, manager, jobs):
    values = list(client.map("pkg.jobs:whoami", range(2), timeout=60, request_id="rq-map",
                             task_timeout=30))
    assert [v["request_id"] for v in values] == ["rq-map", "rq-map"]
    assert len({v["tid"] for v in values}) == 2


def test_map_raises_the_first_failure(project, client, manager, jobs):
    got = []
    with pytest.raises(TaskFailed, match="bad item 3"):
        for value in client.map("pkg.jobs:fail_on", range(6), timeout=60):
            got.append(value)
    assert got == [0, 1, 2]


def test_map_timeout(project, client, manager, jobs):
    never = str(project.root / "never")
    with pytest.raises(WaitTimeout):
        list(client.map("pkg.jobs:wait_for_file", [never], timeout=0.5))


def test_map_rejects_a_zero_window(project, client):
    with pytest.raises(UsageError):
        list(client.map("pkg.jobs:square", [1], max_in_flight=0))


def test_as_completed_yields_first_finished_first(project, client, manager, jobs):
    go = project.root / "go"
    slow = client.submit(function="pkg.jobs:wait_for_file", args=[str(go), "slow"])
    fast = client.submit(function="pkg.jobs:square", args=[3])
    finished = client.as_completed([slow, fast], timeout=60)
    first = next(finished)
    assert first == fast and first.result().value == 9
    assert not slow.done()
    go.touch()
    second = next(finished)
    assert second == slow and second.result().value == "slow"
    with pytest.raises(StopIteration):
        next(finished)


def test_as_completed_yields_failures_too_and_times_out(project, client, manager, jobs):
    bad = client.submit(function="pkg.jobs:boom")
    stuck = client.submit(function="pkg.jobs:wait_for_file", args=[str(project.root / "never")])
    bad.wait(timeout=30)
    finished = client.as_completed([stuck, bad], timeout=0.5)
    first = next(finished)
    assert first == bad and first.wait().status == "failed"
    with pytest.raises(WaitTimeout, match="1 task"):
        next(finished)
    stuck.kill()
