"""Jobs end to end: definitions, a fan-out under a parallel limit, STOP, and a
job whose process dies with its manager and is resumed by another one."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, pid_alive, wait_for
from test_backend_contract import Backend, backend, broker  # noqa: F401 - the fixtures

from weft.broker import Broker
from weft.client.client import WeftClient
from weft.jobs import progress, stopping
from weft.jobs.handle import RESUME_RETRIES
from weft.names import JOBS_CONTROL, JOBS_PROGRESS, SPAWN_REQUESTS

STEPS = '''
import json
import time


def numbers(count):
    return list(range(int(count)))


def square(x, delay=0.0):
    time.sleep(delay)
    return int(x) * int(x)  # a line of output arrives as text


def total(values):
    return sum(values)


def fail_on(x, bad):
    if x == bad:
        raise ValueError(f"item {x} is bad")
    return x
'''


def _job(project: Project, count: int, *, parallel: int = 8, delay: float = 0.0,
         first_delay: float = 0.0) -> dict[str, Any]:
    (project.root / "jobsteps.py").write_text(STEPS)
    return {"name": "squares", "steps": [
        {"name": "fetch", "command": ["python3", "-c",
                                      f"import time; time.sleep({first_delay}); "
                                      f"print('\\n'.join(str(i) for i in range({count})))"]},
        {"name": "square", "map": "lines", "parallel": parallel,
         "function": "jobsteps:square", "kwargs": {"delay": delay}},
        {"name": "merge", "function": "jobsteps:total"},
    ]}


def _children(client: WeftClient, job_tid: str) -> dict[tuple[str, int], str]:
    return progress.children(progress.records(client.broker, job_tid))


def _max_overlap(results: list[Any]) -> int:
    marks = sorted([(r.started_at, 1) for r in results] + [(r.finished_at, -1) for r in results])
    running = peak = 0
    for _ts, step in marks:
        running += step
        peak = max(peak, running)
    return peak


@pytest.fixture
def api(project: Project) -> Any:
    c = WeftClient(project.root)
    try:
        project.track(c.workers.start().pid)
        yield c
    finally:
        c.close()


@pytest.fixture
def backend_api(backend: Backend, api: Any) -> Any:  # noqa: F811
    """:func:`api` on each backend (PostgreSQL when WEFT_TEST_PG_DSN is set): ``backend``
    comes first, so the project is on that backend before the client opens it."""
    return api


# -- definitions ---------------------------------------------------------------------
GOOD = textwrap.dedent('''
    name = "ok"

    [[steps]]
    name = "a"
    command = "echo hi"

    [[steps]]
    name = "b"
    map = [1, 2, 3]
    parallel = 2
    function = "jobsteps:square"
''')


@pytest.mark.parametrize("text,where,what", [
    (GOOD.replace("parallel = 2", "parallel = 0"), ":11:", "steps[1].parallel (step 'b')"),
    (GOOD.replace('map = [1, 2, 3]', 'mapp = [1]'), ":10:", "steps[1].mapp (step 'b'): unknown field"),
    (GOOD + '\nneeds = ["c"]\n', ":14:", "no step named 'c'"),
    (GOOD.replace('command = "echo hi"', 'command = "echo hi"\nneeds = ["b"]'), ":7:",
     "steps[0].needs (step 'a'): a dependency cycle between a, b"),
    (GOOD.replace('name = "a"', 'name = a'), ":5:", "not valid TOML"),
])
def test_validate_names_the_line_and_field(project: Project, text: str, where: str,
                                           what: str) -> None:
    path = project.root / "job.toml"
    path.write_text(text)
    proc = project.cli("job", "validate", str(path))
    assert proc.returncode == 2, proc.stdout
    assert where in proc.stderr and what in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_accepts_json_and_set(project: Project) -> None:
    path = project.root / "job.json"
    path.write_text(json.dumps({"name": "j", "steps": [
        {"name": "a", "command": ["true"]}, {"name": "b", "command": ["true"], "needs": []}]}))
    proc = project.cli("job", "validate", str(path), "--set", "steps.b.parallel=3", "--json")
    assert proc.returncode == 0, proc.stderr
    steps = json.loads(proc.stdout)["steps"]
    assert [s["name"] for s in steps] == ["a", "b"] and steps[1]["parallel"] == 3
    bad = project.cli("job", "validate", str(path), "--set", "steps.zz.parallel=3")
    assert bad.returncode == 2 and "no step named 'zz'" in bad.stderr


# -- running ------------------------------------------------------------------------------
def _check_squares(client: WeftClient, handle: Any, count: int, parallel: int) -> None:
    summary = handle.wait(timeout=120)
    assert summary["status"] == "completed", summary
    assert summary["output"] == sum(i * i for i in range(count))
    steps = {s["name"]: s for s in summary["steps"]}
    assert [s["name"] for s in summary["steps"]] == ["fetch", "square", "merge"]
    assert steps["square"]["items"] == count and steps["square"]["completed"] == count
    kids = _children(client, handle.tid)
    assert len(kids) == count + 2  # one child per item, no more
    results = [client.task(kids[("square", i)]).wait() for i in range(count)]
    assert _max_overlap(results) <= parallel
    for tid in kids.values():
        assert client.task(tid).status()["parent_tid"] == handle.tid


def test_a_three_step_job_fans_out_under_its_parallel_limit(project: Project, api: Any) -> None:
    handle = api.job(_job(project, 20, parallel=4, delay=0.05))
    _check_squares(api, handle, 20, 4)
    tree = api.tree(handle.tid)
    assert tree["rollup"]["done"] == 22 and len(tree["children"]) == 22


def test_a_fan_out_over_200_items_with_parallel_8(project: Project, api: Any) -> None:
    handle = api.job(_job(project, 200, parallel=8))
    _check_squares(api, handle, 200, 8)


def test_the_cli_runs_a_job_file_and_reports_each_step(project: Project) -> None:
    (project.root / "jobsteps.py").write_text(STEPS)
    path = project.root / "job.toml"
    path.write_text(GOOD + textwrap.dedent('''
        [[steps]]
        name = "sum"
        function = "jobsteps:total"
    '''))
    proc = project.cli("job", "run", str(path), "--json", timeout=90)
    try:
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        assert summary["output"] == 14 and summary["status"] == "completed"
        listed = project.cli("job", "list", "--json")
        assert [j["tid"] for j in json.loads(listed.stdout)] == [summary["tid"]]
        status = json.loads(project.cli("job", "status", summary["tid"][-8:], "--json").stdout)
        assert [s["completed"] for s in status["steps"]] == [1, 3, 1]
        tree = json.loads(project.cli("status", summary["tid"], "--tree", "--json").stdout)
        assert [n["name"] for n in tree["children"]] == ["step a", "step b", "step sum"]
        assert [len(n["children"]) for n in tree["children"]] == [1, 3, 1]
        assert tree["children"][1]["children"][2]["name"] == "ok.b[2]"
        logs = project.cli("task", "logs", summary["tid"])
        assert logs.returncode == 0, logs.stderr
        assert "a[0] hi\n" in logs.stdout and "# b[2] " in logs.stdout
    finally:
        project.cli("worker", "stop", "--all")


def test_a_failed_step_stops_the_job_unless_it_continues(project: Project, api: Any) -> None:
    (project.root / "jobsteps.py").write_text(STEPS)
    steps = [{"name": "pick", "map": [1, 2, 3], "function": "jobsteps:fail_on",
              "kwargs": {"bad": 2}},
             {"name": "sum", "function": "jobsteps:total"}]
    stopped = api.job({"name": "strict", "steps": steps}).wait(timeout=60)
    assert stopped["status"] == "failed" and "step 'pick' failed" in stopped["error"]
    assert [s["name"] for s in stopped["steps"]] == ["pick", "sum"]
    assert stopped["steps"][1]["children"] == []  # the next step never started
    steps[0]["on_error"] = "continue"
    tolerant = api.job({"name": "tolerant", "steps": steps}).wait(timeout=60)
    assert tolerant["status"] == "completed" and tolerant["output"] == 4  # 1 + 3
    steps[0]["on_error"] = "retry 1"
    retried = api.job({"name": "retried", "steps": steps}).wait(timeout=60)
    assert retried["status"] == "failed"
    bad = [t for t in retried["steps"][0]["children"] if not api.task(t).wait().ok]
    assert api.task(bad[0]).wait().attempt == 2  # retried once, then given up


def test_dag_steps_run_after_what_they_need(project: Project, api: Any) -> None:
    stamp = ["python3", "-c", "import time; time.sleep(0.2); print(time.time())"]
    job = {"name": "dag", "steps": [
        {"name": "top", "command": stamp, "needs": []},
        {"name": "left", "command": stamp, "needs": ["top"]},
        {"name": "right", "command": stamp, "needs": ["top"]},
        {"name": "bottom", "command": ["cat"], "needs": ["left", "right"]},
    ]}
    summary = api.job(job).wait(timeout=60)
    assert summary["status"] == "completed", summary
    ended = {s["name"]: api.task(s["children"][0]).wait() for s in summary["steps"]}
    assert ended["left"].started_at >= ended["top"].finished_at
    assert ended["bottom"].started_at >= max(ended["left"].finished_at,
                                             ended["right"].finished_at)
    assert len(ended["bottom"].stdout.split()) == 2  # both branches' output as its stdin


def test_stop_mid_fan_out_cancels_the_rest(project: Project, api: Any) -> None:
    handle = api.job(_job(project, 200, parallel=4, delay=0.5))
    wait_for(lambda: len(_children(api, handle.tid)) >= 6, timeout=60,
             what="the fan-out under way")
    handle.cancel()
    ended = handle.task.wait(timeout=30)
    assert ended.status == "cancelled"
    kids = _children(api, handle.tid)
    assert len(kids) < 100
    for tid in kids.values():
        assert api.task(tid).done(), f"child {tid} still going after STOP returned"
    started = [e for e in api.events() if e.get("parent_tid") == handle.tid
               and e["event"] == "task_started"]
    assert all(e["ts"] <= ended.finished_at for e in started)
    assert len(_children(api, handle.tid)) == len(kids)  # nothing submitted since


@pytest.mark.parametrize("how", ["tid", "bulk"])
def test_a_bare_stop_mid_fan_out_lets_no_child_start_afterwards(
        project: Project, backend_api: Any, backend: Backend, how: str) -> None:  # noqa: F811
    """`weft task stop JOB` (no job handle), or a bulk stop that matches the job: once
    it returns no child starts, however slow the job's own process is to notice;
    queued children end cancelled."""
    handle = backend_api.job(_job(project, 100, parallel=8, delay=0.4))
    wait_for(lambda: len(_children(backend_api, handle.tid)) >= 12, timeout=60,
             what="the fan-out under way")
    which = [handle.tid[-8:]] if how == "tid" else ["--name", "job:squares"]
    proc = project.cli("task", "stop", *which, "--json")
    returned = time.time()
    assert proc.returncode == 0, proc.stderr
    reply = json.loads(proc.stdout)
    if how == "tid":
        assert reply["ok"] and reply["details"]["children"]["unfinished"] == []
    else:
        assert [o["tid"] for o in reply] == [handle.tid] and "children" in reply[0]["reply"]
    kids = _children(backend_api, handle.tid)
    assert 12 <= len(kids) < 100
    assert all(backend_api.task(t).done() for t in kids.values()), "a child still going after STOP"
    ended = handle.task.wait(timeout=30)
    assert ended.status == "cancelled" and ended.reason == "stop", ended
    assert _children(backend_api, handle.tid) == kids  # nothing queued since
    started = [e for e in backend_api.events() if e.get("parent_tid") == handle.tid
               and e["event"] == "task_started"]
    assert started and max(e["ts"] for e in started) <= returned
    statuses = {backend_api.task(t).wait().status for t in kids.values()}
    assert statuses <= {"completed", "cancelled"} and "cancelled" in statuses
    assert list(backend_api.broker.peek_all(JOBS_CONTROL)) == []  # nothing left behind


def test_stop_of_a_frozen_job_lets_no_child_start_afterwards(project: Project,
                                                              api: Any) -> None:
    """The job's process is paused (SIGSTOP: as slow as it gets) when STOP comes: the
    children it queued earlier still never start once the STOP returns."""
    handle = api.job(_job(project, 60, parallel=8, delay=0.4))
    wait_for(lambda: len(_children(api, handle.tid)) >= 12, timeout=60,
             what="the fan-out under way")
    assert handle.task.pause()["ok"]
    proc = project.cli("task", "stop", handle.tid, "--json")
    returned = time.time()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["details"]["children"]["unfinished"] == []
    ended = handle.task.wait(timeout=30)
    assert ended.status == "cancelled" and ended.reason == "stop", ended
    kids = _children(api, handle.tid)
    assert all(api.task(t).done() for t in kids.values())
    started = [e for e in project.events() if e.get("parent_tid") == handle.tid
               and e["event"] == "task_started"]
    assert started and max(e["ts"] for e in started) <= returned


def test_the_fence_refuses_a_child_once_the_job_is_stopped(broker: Broker) -> None:  # noqa: F811
    """The broker decides, not the job's process: after close, submit_child queues
    nothing (on each backend: the check and the insert are one transaction)."""
    job = str(broker.generate_id()).zfill(19)
    fence = stopping.open_fence(broker, job)
    assert fence is not None and stopping.open_fence(broker, job) == fence
    assert stopping.is_open(broker, job)
    first = progress.submit_child(broker, job, "s", 0, '{"x":1}', fence=fence)
    assert first is not None
    stopping.close(broker, job, command="STOP", reason=None)
    assert not stopping.is_open(broker, job)
    assert progress.submit_child(broker, job, "s", 1, '{"x":2}', fence=fence) is None
    assert stopping.open_fence(broker, job) is None  # a resumed job sees the stop
    assert progress.children(progress.records(broker, job)) == {("s", 0): first}
    assert [int(first)] == [mid for _body, mid in broker.peek_all(SPAWN_REQUESTS)]
    stopping.forget(broker, job)
    assert list(broker.peek_all(JOBS_CONTROL)) == []


def test_logs_follow_streams_every_child_until_the_job_ends(project: Project, api: Any) -> None:
    """`weft task logs JOB --follow`, started before any child exists, prints each
    child's lines prefixed by step and item as they come, then ends with the job."""
    job = {"name": "echoes", "steps": [
        {"name": "list", "command": "sleep 0.5; printf 'a\\nb\\nc\\nd\\n'"},
        {"name": "shout", "map": "lines", "parallel": 2, "command": "echo got {item}"},
        {"name": "count", "command": "wc -l"},
    ]}
    handle = api.job(job)
    follower = project.popen("task", "logs", handle.tid, "--follow")
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert handle.task.done()  # it ended because the job did
    lines = out.splitlines()
    for i, item in enumerate("abcd"):
        assert f"shout[{i}] got {item}" in lines, out
    assert "list[0] a" in lines and "count[0] 4" in lines
    assert any(line.startswith("# shout[3] ") and "result  completed" in line for line in lines)
    order = [lines.index(f"shout[{i}] got {c}") for i, c in enumerate("abcd")]
    assert lines.index("list[0] a") < min(order) and max(order) < lines.index("count[0] 4")


def test_pause_holds_further_items_until_resume(project: Project, api: Any) -> None:
    handle = api.job(_job(project, 12, parallel=2, delay=0.3))
    wait_for(lambda: len(_children(api, handle.tid)) >= 4, timeout=60, what="fan-out under way")
    assert handle.task.pause()["ok"]
    held = _children(api, handle.tid)
    # Once what was in flight has finished, nothing new may have been submitted.
    wait_for(lambda: all(api.task(t).done() for t in held.values()), timeout=30,
             what="the children in flight to finish")
    assert _children(api, handle.tid) == held
    assert handle.task.resume()["ok"]
    summary = handle.wait(timeout=60)
    assert summary["status"] == "completed" and summary["output"] == sum(i * i for i in range(12))


# -- crash safety --------------------------------------------------------------------
def _kill_host_of(project: Project, client: WeftClient, job_tid: str, manager_tid: str) -> None:
    """SIGKILL the job's process, its manager and its launcher: a host dying."""
    record = project.registry()[manager_tid]
    job_pid = client.task(job_tid).status().get("pid")
    kills = [(os.killpg, job_pid), (os.kill, record["pid"]), (os.kill, record.get("launcher_pid"))]
    for kill, pid in kills:
        if pid:
            try:
                kill(int(pid), signal.SIGKILL)  # the job's whole group; the manager, the launcher
            except ProcessLookupError:
                pass
    wait_for(lambda: not pid_alive(int(record["pid"])), what="the manager gone")


@pytest.mark.parametrize("when", ["between_steps", "mid_fan_out"])
def test_a_killed_job_is_resumed_by_another_manager_without_repeats(
        project: Project, client: WeftClient, when: str) -> None:
    first = client.workers.start(max_concurrency=1)  # runs the job and nothing else
    project.track(first.pid)
    job = _job(project, 30, parallel=3, delay=0.3, first_delay=2.0 if when == "between_steps" else 0)
    handle = client.job(job)
    wait_for(lambda: handle.task.status()["status"] == "running", timeout=30, what="job running")
    assert handle.task.status()["manager_tid"] == first.tid
    other = client.workers.start()  # runs the children
    project.track(other.pid)
    if when == "between_steps":
        wait_for(lambda: ("fetch", 0) in _children(client, handle.tid), what="step 1 submitted")
    else:
        wait_for(lambda: len(_children(client, handle.tid)) >= 8, timeout=60,
                 what="the fan-out under way")
    before = _children(client, handle.tid)
    assert len(before) < 32
    _kill_host_of(project, client, handle.tid, first.tid)
    summary = handle.wait(timeout=120)
    assert summary["status"] == "completed", summary
    assert summary["output"] == sum(i * i for i in range(30))
    assert handle.task.wait().attempt >= 2  # it was resumed, not run from a blank slate
    records = [json.loads(r) if isinstance(r, str) else r for r in project.rows(JOBS_PROGRESS)]
    items = [(r["step"], r["item"]) for r in records if r.get("kind") == "child"]
    assert len(items) == len(set(items)) == 32  # every item submitted exactly once
    after = _children(client, handle.tid)
    assert all(after[key] == tid for key, tid in before.items())
    for tid in after.values():
        starts = [e for e in client.task(tid).events() if e["event"] == "task_started"]
        assert len(starts) == 1, f"child {tid} started {len(starts)} times"


def test_a_job_process_killed_alone_is_resumed_by_its_live_manager(project: Project,
                                                                    api: Any) -> None:
    """kill -9 of the job's process only (its manager lives on): the manager retries it
    (consumer_lost) and the new attempt resumes; each item runs exactly once."""
    handle = api.job(_job(project, 24, parallel=4, delay=0.2))
    wait_for(lambda: len(_children(api, handle.tid)) >= 8, timeout=60,
             what="the fan-out under way")
    before = _children(api, handle.tid)
    pid = int(handle.task.status()["pid"])
    os.kill(pid, signal.SIGKILL)
    summary = handle.wait(timeout=90)
    assert summary["status"] == "completed", summary
    assert summary["output"] == sum(i * i for i in range(24))
    events = handle.task.events()
    assert [e["reason"] for e in events if e["event"] == "task_retrying"] == ["consumer_lost"]
    assert handle.task.wait().attempt == 2
    after = _children(api, handle.tid)
    assert len(after) == 26 and all(after[key] == tid for key, tid in before.items())
    for tid in after.values():
        starts = [e for e in api.task(tid).events() if e["event"] == "task_started"]
        assert len(starts) == 1, f"child {tid} started {len(starts)} times"


def test_a_job_that_keeps_dying_ends_failed_when_its_resumes_run_out(project: Project,
                                                                       api: Any) -> None:
    """Resuming is bounded: a job whose process dies at every attempt ends ``failed``
    (consumer_lost) after RESUME_RETRIES resumes, and never queued a child twice."""
    job = {"name": "doomed", "steps": [{"name": "hold", "command": ["sleep", "60"]},
                                       {"name": "never", "command": ["true"]}]}
    handle = api.job(job)
    for attempt in range(1, RESUME_RETRIES + 2):
        def started(attempt: int = attempt) -> Any:
            starts = [e for e in handle.task.events() if e["event"] == "task_started"]
            return starts[-1]["pid"] if len(starts) == attempt else None

        pid = wait_for(started, timeout=30, what=f"attempt {attempt} running")
        if attempt == 1:
            wait_for(lambda: _children(api, handle.tid), what="the first step queued")
        os.kill(int(pid), signal.SIGKILL)
    ended = handle.task.wait(timeout=30)
    assert ended.status == "failed" and ended.reason == "consumer_lost", ended
    assert ended.attempt == RESUME_RETRIES + 1
    records = [r for r in progress.records(api.broker, handle.tid) if r.get("kind") == "child"]
    assert [(r["step"], r["item"]) for r in records] == [("hold", 0)]  # queued once
    child = api.task(records[0]["tid"])
    assert [e["event"] for e in child.events()].count("task_started") <= 1
    api.cancel(child.tid)  # no process of the job is left to stop it


def test_kill_of_a_job_ends_it_killed_with_its_children(project: Project, api: Any) -> None:
    """An operator's KILL is not a crash: the job is not resumed, and no child starts."""
    handle = api.job(_job(project, 40, parallel=4, delay=0.3))
    wait_for(lambda: len(_children(api, handle.tid)) >= 6, timeout=60,
             what="the fan-out under way")
    reply = api.cancel(handle.tid, kill=True)
    returned = time.time()
    assert reply[0]["status"] is not None
    ended = handle.task.wait(timeout=30)
    assert ended.status == "killed" and ended.attempt == 1
    kids = _children(api, handle.tid)
    assert all(api.task(t).done() for t in kids.values())
    assert {api.task(t).wait().status for t in kids.values()} <= {"completed", "killed",
                                                                  "cancelled"}
    started = [e for e in project.events() if e.get("parent_tid") == handle.tid
               and e["event"] == "task_started"]
    assert max(e["ts"] for e in started) <= returned


def test_job_files_are_not_found_cleanly(project: Project) -> None:
    proc = project.cli("job", "run", str(Path(project.root) / "missing.toml"))
    assert proc.returncode == 2 and "cannot read job file" in proc.stderr
