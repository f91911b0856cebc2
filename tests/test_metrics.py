"""Prometheus metrics: a real manager serving /metrics, ``weft metrics``, and
the event → metric mapping both share."""

from __future__ import annotations

import json
import urllib.request

import pytest
from conftest import wait_for
from prometheus_client.parser import text_string_to_metric_families

from weft.errors import UsageError
from weft.metrics.registry import TaskMetrics, reason_kind
from weft.metrics.server import parse_addr


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def summed(got: dict, name: str, **labels: str) -> float:
    """The sum of ``name`` over every series whose labels include ``labels``."""
    return sum(v for (n, lab), v in got.items()
               if n == name and set(labels.items()) <= set(lab))


def families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def completed_total(text: str) -> float:
    """What the issue's check does: a counter family matching weft_tasks_*completed*."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.type == "counter" and family.name.startswith("weft_tasks_") \
                and "completed" in family.name:
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def test_manager_serves_metrics_and_weft_metrics_agrees(project, client):
    started = project.cli("worker", "start", "--metrics-addr", "127.0.0.1:0", "--json")
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    project.track(info["pid"])
    record = project.registry()[info["tid"]]  # read the broker directly, not via weft
    host, _, port = record["metrics_addr"].rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0

    shown = project.cli("worker", "status", info["tid"])
    assert f"http://{record['metrics_addr']}/metrics" in shown.stdout

    def scrape() -> str:
        with urllib.request.urlopen(f"http://{record['metrics_addr']}/metrics", timeout=5) as r:
            return r.read().decode()

    sleeper = client.submit(command=["sleep", "30"], resources={"cpus": 1, "memory_mb": 64})
    wait_for(lambda: any(e["event"] == "task_started" for e in project.events(sleeper.tid)),
             what="the sleeper to run")
    live = samples(scrape())
    mgr = (("manager", info["tid"]),)
    assert live[("weft_tasks_running", ())] == 1
    assert live[("weft_reserved_cpus", mgr)] == 1
    assert live[("weft_reserved_memory_bytes", mgr)] == 64 * 1024 * 1024
    sleeper.kill(timeout=30)
    assert sleeper.wait(timeout=30).status == "killed"

    tasks = [client.submit(command=["true"]) for _ in range(5)]
    tasks.append(client.submit(command=["sh", "-c", "exit 3"]))
    for task in tasks:
        task.wait(timeout=30)

    # The last events are counted when the manager flushes them, which is
    # before a waiter can see the result: no polling needed, but be tolerant.
    text = wait_for(lambda: (t := scrape()) and completed_total(t) >= 5 and t, timeout=30,
                    what="five completed tasks in /metrics")
    got = samples(text)
    assert completed_total(text) == 5
    assert got[("weft_tasks_submitted_total", ())] == 7
    assert got[("weft_tasks_admitted_total", ())] == 7
    assert got[("weft_tasks_failed_total", (("group", "default"), ("task", "sh")))] == 1
    assert summed(got, "weft_tasks_killed_total") == 1
    assert got[("weft_task_queue_wait_seconds_count", ())] == 7
    assert got[("weft_task_run_seconds_count", (("group", "default"), ("outcome", "completed"),
                                                ("task", "true")))] == 5
    assert summed(got, "weft_task_run_seconds_count", outcome="failed") == 1
    assert got[("weft_tasks_running", ())] == 0 and got[("weft_reserved_cpus", mgr)] == 0
    assert got[("weft_admission_decisions_total", (("decision", "admit"), ("reason", "fits")))] == 7
    # issue 14: task and group labels, manager up/paused, build info
    done = (("group", "default"), ("outcome", "completed"), ("task", "true"))
    assert got[("weft_tasks_finished_total", done)] == 5
    assert got[("weft_task_duration_seconds_count", (("group", "default"), ("task", "sh")))] == 1
    assert got[("weft_manager_up", mgr)] == 1 and got[("weft_manager_paused", mgr)] == 0
    assert [k for k in got if k[0] == "weft_build_info"]
    assert got[("weft_manager_resident_memory_bytes", mgr)] > 1e6
    assert got[("weft_manager_cpu_seconds_total", mgr)] > 0
    assert ("weft_queue_depth", (("queue", "weft.spawn.requests"),)) in got
    assert families(text)["weft_tasks_completed"].type == "counter"

    once = project.cli("metrics")
    assert once.returncode == 0, once.stderr
    assert completed_total(once.stdout) == 5
    offline = samples(once.stdout)
    killed = ("weft_tasks_killed_total", (("group", "default"), ("task", "sleep")))
    for key in (("weft_tasks_submitted_total", ()), killed,
                ("weft_task_queue_wait_seconds_count", ()), ("weft_tasks_running", ()),
                ("weft_tasks_finished_total", done)):
        assert offline[key] == got[key], key
    assert 0 <= offline[("weft_manager_heartbeat_age_seconds", mgr)] < 30
    assert offline[("weft_manager_resident_memory_bytes", mgr)] > 1e6
    offline_only = {"weft_queue_oldest_age_seconds", "weft_broker_database_bytes",
                    "weft_blob_store_bytes"}  # read from the broker's files: weft metrics only
    assert set(families(once.stdout)) - offline_only == set(families(text))
    # the manager's broker operations, live and as its last heartbeat published them
    settles = ("weft_broker_operation_seconds_count", (("manager", info["tid"]), ("op", "settle")))
    # fenced transactions: one per manager step (which may settle several of the 7
    # tasks), besides the start checks and cancels that are fenced on their own
    assert got[settles] >= 1
    wait_for(lambda: samples(client.metrics()).get(settles, 0) >= got[settles], timeout=10,
             what="the next heartbeat to publish the broker counts")
    assert got[("weft_broker_lock_retries_total", mgr)] >= 0


def test_bad_metrics_addr_is_refused_before_starting(project):
    proc = project.cli("worker", "start", "--metrics-addr", "localhost:http")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--metrics-addr" in proc.stderr
    assert project.registry() == {}


def test_metrics_off_by_default(project, manager):
    assert project.registry()[manager.tid]["metrics_addr"] is None


@pytest.mark.parametrize(("text", "expected"), [
    ("9100", ("127.0.0.1", 9100)), (":0", ("127.0.0.1", 0)),
    ("0.0.0.0:9464", ("0.0.0.0", 9464)), ("[::1]:9464", ("::1", 9464)),
])
def test_parse_addr(text, expected):
    assert parse_addr(text) == expected


@pytest.mark.parametrize("text", ["", "host:", "1:2:x", "70000", "[::1]9", "a:-1"])
def test_parse_addr_rejects(text):
    with pytest.raises(UsageError):
        parse_addr(text)


def value(metrics: TaskMetrics, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    from prometheus_client import generate_latest

    return summed(samples(generate_latest(metrics.registry).decode()), name, **labels)


def ev(event: str, tid: str, ts: float, **fields: object) -> dict[str, object]:
    return {"event": event, "tid": tid, "ts": ts, "manager_tid": "M", **fields}


def test_event_mapping_reservations_retries_and_decisions():
    tid = str(1_700_000_000 * 10**9).zfill(19)  # minted at t=1.7e9
    m = TaskMetrics()
    res = {"cpus": 2, "memory_mb": 100, "gpus": 1, "vram_mb": 50}
    m.observe(ev("task_deferred", tid, 1.7e9 + 1, reason="cpus: needs 2, 0 of 2 unreserved"))
    m.observe(ev("task_spawning", tid, 1.7e9 + 2, resources=res, gpus=[0], attempt=1))
    assert value(m, "weft_reserved_cpus", manager="M") == 2
    assert value(m, "weft_reserved_memory_bytes", manager="M") == 100 * 1024 * 1024
    assert value(m, "weft_reserved_vram_bytes", manager="M") == 50 * 1024 * 1024
    assert value(m, "weft_tasks_running") == 1
    m.observe(ev("task_started", tid, 1.7e9 + 3))
    assert value(m, "weft_task_queue_wait_seconds_sum") == pytest.approx(3.0)
    m.observe(ev("task_retrying", tid, 1.7e9 + 4, attempt=1))
    assert value(m, "weft_tasks_running") == 0 and value(m, "weft_reserved_cpus", manager="M") == 0
    m.observe(ev("task_spawning", tid, 1.7e9 + 5, resources=res, gpus=[0], attempt=2))
    m.observe(ev("task_started", tid, 1.7e9 + 6, attempt=2))
    m.observe(ev("task_timeout", tid, 1.7e9 + 9, attempt=2))
    assert value(m, "weft_tasks_submitted_total") == 1  # attempts and deferrals count once
    assert value(m, "weft_tasks_admitted_total") == 2
    assert value(m, "weft_tasks_retried_total") == 1
    assert value(m, "weft_tasks_timeout_total", group="default", task="unknown") == 1
    assert value(m, "weft_task_queue_wait_seconds_sum") == pytest.approx(3.0 + 2.0)
    assert value(m, "weft_task_run_seconds_sum", outcome="timeout", group="default",
                 task="unknown") == pytest.approx(3.0)
    assert value(m, "weft_reserved_gpus", manager="M") == 0 and value(m, "weft_tasks_running") == 0
    assert value(m, "weft_admission_decisions_total", decision="defer", reason="cpus") == 1
    m.observe(ev("task_rejected", "1" * 19, 1.7e9, reason="invalid_request"))
    assert value(m, "weft_admission_decisions_total", decision="reject",
                 reason="invalid_request") == 1
    m.observe({"event": "task_completed"})  # malformed: ignored, never raises
    m.observe({"event": "task_started", "tid": tid, "ts": "not a time"})


def test_reason_kinds_keep_label_cardinality_low():
    assert reason_kind("host memory: less than 512 MB free") == "host_memory"
    assert reason_kind("needs 64 CPUs, this manager has 2") == "capacity"
    assert reason_kind("concurrency: 8 of 8 slots in use") == "concurrency"
    assert reason_kind(None) == "unknown"
    assert reason_kind("x" * 80) == "other"
