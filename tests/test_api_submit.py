"""WeftClient.submit/run and Result, against a real manager and real task processes."""

from __future__ import annotations

import time

import pytest
from conftest import wait_for
from jobs_module import write_jobs

from weft import InvalidSpec, Resources, Result, TaskFailed, TaskSpec, WaitTimeout
from weft.names import SPAWN_REQUESTS


@pytest.fixture
def jobs(project):
    return write_jobs(project.root)


def test_submit_returns_at_once_and_starts_a_manager(project, client, jobs):
    assert client.workers.list() == []
    go = project.root / "go"
    task = client.submit(function="pkg.jobs:wait_for_file", args=[str(go), "done"])
    # The task cannot have finished: it waits for a file we have not made yet.
    assert len(task.tid) == 19 and task.tid.isdigit()
    assert not task.done()
    assert task.status()["status"] in ("queued", "spawning", "running")
    managers = client.workers.list()
    assert len(managers) == 1 and managers[0].status == "active"
    go.touch()
    assert task.result(timeout=30).value == "done"
    # A second submit reuses the live manager.
    assert client.run(function="pkg.jobs:square", args=[3], wait_timeout=30).value == 9
    assert [w.tid for w in client.workers.list()] == [managers[0].tid]


def test_run_command_result_fields(project, client, manager):
    before = time.time()
    res = client.run(command=["sh", "-c", "echo out; echo err >&2"], name="fields",
                     request_id="rq-fields", wait_timeout=30)
    assert isinstance(res, Result)
    assert res.ok and res.status == "completed"
    assert res.exit_code == 0 and res.value is None and res.error is None
    assert res.stdout == "out\n" and res.stderr == "err\n"
    assert res.attempt == 1
    assert res.name == "fields" and res.request_id == "rq-fields"
    assert res.started_at is not None and res.finished_at is not None
    assert before <= res.started_at <= res.finished_at <= time.time()
    assert res.duration == pytest.approx(res.finished_at - res.started_at)
    assert res.to_dict()["type"] == "result"


def test_function_value_args_kwargs_and_stdout(project, client, manager, jobs):
    res = client.run(function="pkg.jobs:greet", args=["bob"], kwargs={"punct": "?"},
                     wait_timeout=30)
    assert res.value == "hello bob?"
    assert res.stdout == "working\n"


def test_function_given_as_callable(project, client, manager, jobs, monkeypatch):
    monkeypatch.syspath_prepend(str(project.root))
    from pkg.jobs import square

    assert client.run(function=square, args=[6], wait_timeout=30).value == 36


def test_failed_function_raises_task_failed_with_remote_traceback(project, client, manager, jobs):
    task = client.submit(function="pkg.jobs:boom")
    with pytest.raises(TaskFailed) as info:
        task.result(timeout=30)
    err = info.value
    assert "kaboom-42" in str(err)
    assert err.status == "failed"
    assert err.error == "ValueError: kaboom-42"
    assert err.traceback is not None
    assert "Traceback" in err.traceback and 'raise ValueError("kaboom-42")' in err.traceback
    assert "jobs.py" in err.traceback
    assert err.result.tid == task.tid
    # wait() reports the same outcome without raising.
    res = task.wait(timeout=5)
    assert res.status == "failed" and res.exit_code == 1 and not res.ok


def test_failed_command_keeps_exit_code_and_output(project, client, manager):
    task = client.submit(command=["sh", "-c", "echo partial; exit 3"])
    with pytest.raises(TaskFailed) as info:
        task.result(timeout=30)
    assert info.value.result.exit_code == 3
    assert info.value.result.stdout == "partial\n"
    assert "exit" in str(info.value) or "3" in str(info.value)


def test_task_timeout_option(project, client, manager, jobs):
    task = client.submit(function="pkg.jobs:wait_for_file", args=[str(project.root / "never")],
                         timeout=0.5)
    with pytest.raises(TaskFailed) as info:
        task.result(timeout=30)
    assert info.value.status == "timeout"
    assert task.wait().status == "timeout"


def test_wait_timeout_raises_and_task_goes_on(project, client, manager, jobs):
    go = project.root / "go"
    task = client.submit(function="pkg.jobs:wait_for_file", args=[str(go), 1])
    with pytest.raises(WaitTimeout):
        task.wait(timeout=0.2)
    with pytest.raises(WaitTimeout):
        client.run(function="pkg.jobs:wait_for_file", args=[str(go), 2], wait_timeout=0.2)
    go.touch()
    assert task.result(timeout=30).value == 1


def test_env_cwd_and_stdin(project, client, manager, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    res = client.run(command=["sh", "-c", 'echo "$GREETING"; pwd; cat'], env={"GREETING": "hi"},
                     cwd=other, inbox_message="from-stdin", wait_timeout=30)
    assert res.stdout.splitlines() == ["hi", str(other), "from-stdin"]


def test_resources_as_model_or_dict(project, client, manager):
    first = client.submit(command=["true"], resources={"cpus": 0.5, "memory_mb": 64})
    second = client.submit(command=["true"], resources=Resources(cpus=0.25))
    for task in (first, second):
        task.result(timeout=30)
    spawning = {t.tid: next(e for e in t.events() if e["event"] == "task_spawning")
                for t in (first, second)}
    assert spawning[first.tid]["resources"]["cpus"] == 0.5
    assert spawning[first.tid]["resources"]["memory_mb"] == 64
    assert spawning[second.tid]["resources"]["cpus"] == 0.25


def test_retries_shorthand_retries_a_failed_attempt(project, client, manager, jobs):
    marker = project.root / "tried-once"
    res = client.run(function="pkg.jobs:flaky", args=[str(marker)], retries=1, wait_timeout=30)
    assert res.value == "second time lucky"
    assert res.attempt == 2
    task = client.task(res.tid)
    assert [e["event"] for e in task.events()].count("task_retrying") == 1
    # Without retries the same failure is final.
    marker.unlink()
    with pytest.raises(TaskFailed, match="first attempt fails"):
        client.run(function="pkg.jobs:flaky", args=[str(marker)], wait_timeout=30)


def test_spec_with_overrides(project, client, manager):
    spec = TaskSpec(command=("sh", "-c", "echo from-spec"), name="base")
    res = client.run(spec=spec, name="override", wait_timeout=30)
    assert res.stdout == "from-spec\n" and res.name == "override"
    res = client.run(spec={"command": ["echo", "dict-spec"]}, wait_timeout=30)
    assert res.stdout == "dict-spec\n"


def test_delay_holds_the_task_back(project, client, manager):
    submitted = time.time()
    res = client.run(command=["true"], delay=1.0, wait_timeout=30)
    assert res.started_at is not None and res.started_at - submitted >= 1.0


def test_request_id_is_generated_and_recorded(project, client, manager):
    res = client.run(command=["true"], wait_timeout=30)
    assert res.request_id and len(res.request_id) >= 16
    events = client.task(res.tid).events()
    assert {e.get("request_id") for e in events} == {res.request_id}
    assert [t["tid"] for t in client.tasks(request_id=res.request_id)] == [res.tid]


@pytest.mark.parametrize("bad, words", [
    ({"command": ["true"], "resources": {"cpus": -1}}, ["resources.cpus"]),
    ({"command": ["true"], "resources": {"colour": 1}}, ["resources.colour", "unknown field"]),
    ({"command": ["true"], "function": "a:b"}, ["exactly one"]),
    ({"function": "not a target"}, ["function"]),
    ({"command": ["true"], "colour": "blue"}, ["unknown task option", "colour"]),
    ({"command": ["true"], "timeout": 0}, ["timeout"]),
])
def test_bad_input_is_refused_before_anything_is_queued(project, client, bad, words):
    with pytest.raises(InvalidSpec) as info:
        client.submit(**bad)
    for word in words:
        assert word in str(info.value)
    assert project.rows(SPAWN_REQUESTS) == []
    assert client.workers.list() == []


def test_callable_from_elsewhere_needs_an_importable_name(project, client):
    with pytest.raises(InvalidSpec, match="module-level"):
        client.submit(function=lambda: 1)


def test_submit_does_not_wait_for_a_slow_task(project, client, manager, jobs):
    go = project.root / "go"
    # None of them can finish before we make the file, so submit cannot have waited.
    tasks = [client.submit(function="pkg.jobs:wait_for_file", args=[str(go), i]) for i in range(5)]
    wait_for(lambda: all(t.status()["status"] == "running" for t in tasks), what="all running")
    assert not any(t.done() for t in tasks)
    go.touch()
    assert [t.result(timeout=30).value for t in tasks] == list(range(5))


def test_script_function_needs_the_script_in_the_task_cwd(project, client):
    def helper():
        return 1

    helper.__module__ = "__main__"
    helper.__qualname__ = "helper"
    with pytest.raises(InvalidSpec, match="cwd="):
        client.submit(function=helper)
    assert project.rows(SPAWN_REQUESTS) == []
