"""Operator metrics of issue 14: bounded task and group labels, the age of
the oldest queued request per group, build info, and an exposition that
promtool accepts (where promtool is installed)."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from weft.metrics.labels import MAX_TASKS, OTHER
from weft.metrics.registry import TaskMetrics


def _samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_task_labels_are_bounded_and_follow_the_task():
    m = TaskMetrics()
    for i in range(MAX_TASKS + 50):
        tid = str(1_700_000_000_000_000_000 + i)
        m.observe({"event": "task_admitted", "tid": tid, "task": f"job{i}", "group": "g"})
        m.observe({"event": "task_started", "tid": tid, "ts": 1.7e9})
        m.observe({"event": "task_completed", "tid": tid, "ts": 1.7e9 + 2})
    tasks = {task for (_outcome, _group, task) in m.finished}
    assert len(tasks) == MAX_TASKS + 1 and OTHER in tasks
    assert m.finished[("completed", "g", OTHER)] == 50
    assert m.by_task[("g", "job0")].total == pytest.approx(2.0)
    m = TaskMetrics()
    spec = {"command": ["/usr/bin/python3", "x.py"], "group": "gpu"}
    m.observe({"event": "task_submitted", "tid": "9" * 19, "spec": spec})
    m.observe({"event": "task_failed", "tid": "9" * 19, "ts": 1.7e9})
    assert m.finished[("failed", "gpu", "python3")] == 1


def test_oldest_queued_age_per_group_and_build_info(client):
    client.auto_start = False
    client.submit(command=["true"], group="g")
    time.sleep(0.05)  # the age must grow past zero; there is no event to wait on
    client.submit(command=["true"])
    got = _samples(client.metrics())
    assert got[("weft_queue_oldest_age_seconds", (("group", "g"),))] >= 0.05
    assert ("weft_queue_oldest_age_seconds", (("group", "default"),)) in got
    assert any(name == "weft_build_info" for name, _ in got)


def test_promtool_accepts_the_exposition(client):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed: 'promtool check metrics' not run "
                    "(install prometheus to run this check)")
    client.auto_start = False
    client.submit(command=["true"], group="g")
    proc = subprocess.run([promtool, "check", "metrics"], input=client.metrics(),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_peak_memory_cpu_and_fine_run_buckets():
    from weft.metrics.registry import RUN_BUCKETS

    ratios = [b / a for a, b in zip(RUN_BUCKETS, RUN_BUCKETS[1:], strict=False)]
    assert RUN_BUCKETS[0] <= 0.01 and RUN_BUCKETS[-1] >= 3600 and max(ratios) < 1.11
    m = TaskMetrics()
    tid = "1" * 19
    m.observe({"event": "task_started", "tid": tid, "ts": 1.7e9})
    m.observe({"event": "task_completed", "tid": tid, "ts": 1.7e9 + 1, "peak_rss_mb": 50,
               "cpu_time_s": 0.5})
    assert m.peak_memory.total == 50 * 1024 * 1024 and m.cpu_time.total == 0.5


def test_gpu_gauges_and_storage_size(client):
    from prometheus_client import CollectorRegistry, generate_latest

    from weft.metrics.registry import manager_families

    record = {"tid": "M", "capabilities": {"gpus": [{"index": 0, "memory_mb": 1000},
                                                    {"index": 1, "memory_mb": 2000}]},
              "load": {"reserved": {"vram_mb_by_gpu": {"0": 300}, "exclusive_gpus": [1]}}}

    class Fixed:
        def collect(self):
            return manager_families([record], {})

    reg = CollectorRegistry()
    reg.register(Fixed())
    got = _samples(generate_latest(reg).decode())
    mib = 1024 * 1024
    assert got[("weft_gpu_memory_bytes", (("gpu", "1"), ("manager", "M")))] == 2000 * mib
    assert got[("weft_gpu_reserved_vram_bytes", (("gpu", "0"), ("manager", "M")))] == 300 * mib
    assert got[("weft_gpu_exclusive", (("gpu", "1"), ("manager", "M")))] == 1
    client.auto_start = False
    client.submit(command=["true"])
    assert _samples(client.metrics())[("weft_broker_database_bytes", ())] > 0


def test_live_gpu_readings_on_a_managers_endpoint(project):
    import json
    import urllib.request

    from conftest import wait_for

    cards = json.dumps([{"memory_mb": 1000, "used_mb": 250, "utilization_pct": 40}])
    proc = project.cli("worker", "start", "--metrics-addr", "127.0.0.1:0", "--json",
                       env={"WEFT_GPU_SIMULATE": cards})
    assert proc.returncode == 0, proc.stderr
    addr = wait_for(lambda: project.registry().get(json.loads(proc.stdout)["tid"], {})
                    .get("metrics_addr"), what="the metrics address")
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
        text = r.read().decode()
    got = _samples(text)
    if shutil.which("promtool"):  # the endpoint's families lint clean too
        lint = subprocess.run(["promtool", "check", "metrics"], input=text,
                              capture_output=True, text=True, timeout=30)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    tid = json.loads(proc.stdout)["tid"]
    key = (("gpu", "0"), ("manager", tid))
    assert got[("weft_gpu_memory_used_bytes", key)] == 250 * 1024 * 1024
    assert got[("weft_gpu_utilization_ratio", key)] == 0.4
    assert got[("weft_gpu_memory_bytes", key)] == 1000 * 1024 * 1024


def _quantile(q, buckets):
    """histogram_quantile as Prometheus computes it: linear inside the bucket."""
    total = buckets[-1][1]
    rank, lower, below = q * total, 0.0, 0
    for bound, count in buckets:
        if count >= rank:
            return lower + (bound - lower) * (rank - below) / max(count - below, 1)
        lower, below = bound, count
    return lower


@pytest.mark.parametrize("family", ["weft_task_run_seconds", "weft_task_duration_seconds"])
def test_p95_per_task_within_ten_percent_from_10ms_to_an_hour(family):
    import random

    from prometheus_client import generate_latest

    from weft.metrics.registry import RUN_BUCKETS, TASK_BUCKETS

    for bounds in (RUN_BUCKETS, TASK_BUCKETS):
        ratios = [b / a for a, b in zip(bounds, bounds[1:], strict=False)]
        assert bounds[0] <= 0.01 and bounds[-1] >= 3600 and max(ratios) < 1.101  # 10 %, rounded to 4 digits
    rng = random.Random(14)
    for true_p95 in (0.012, 0.3, 7.0, 95.0, 2900.0):
        m = TaskMetrics()
        values = sorted(true_p95 * rng.uniform(0.2, 1.05) for _ in range(400))
        for i, seconds in enumerate(values):
            tid = str(1_700_000_000_000_000_000 + i)
            m.observe({"event": "task_admitted", "tid": tid, "task": "mod:fn", "group": "g"})
            m.observe({"event": "task_started", "tid": tid, "ts": 1.7e9})
            m.observe({"event": "task_completed", "tid": tid, "ts": 1.7e9 + seconds})
        text = generate_latest(m.registry).decode()
        buckets = [(float(s.labels["le"]), s.value) for fam in
                   text_string_to_metric_families(text) for s in fam.samples
                   if s.name == family + "_bucket" and s.labels["task"] == "mod:fn"]
        exact = values[int(0.95 * len(values)) - 1]
        assert abs(_quantile(0.95, buckets) / exact - 1) <= 0.10, (true_p95, family)


def test_outcome_counters_carry_group_and_task_and_count_results_too_large():
    m = TaskMetrics()
    for i, (outcome, reason) in enumerate([("completed", None), ("failed", "result_too_large"),
                                           ("failed", None)]):
        tid = str(1_700_000_000_000_000_000 + i)
        m.observe({"event": "task_admitted", "tid": tid, "task": "pkg.mod:fn", "group": "gpu"})
        m.observe({"event": "task_started", "tid": tid, "ts": 1.7e9})
        m.observe({"event": f"task_{outcome}", "tid": tid, "ts": 1.7e9 + 1, "reason": reason})
    from prometheus_client import generate_latest

    got = _samples(generate_latest(m.registry).decode())
    key = (("group", "gpu"), ("task", "pkg.mod:fn"))
    assert got[("weft_tasks_completed_total", key)] == 1
    assert got[("weft_tasks_failed_total", key)] == 2
    assert got[("weft_task_results_too_large_total", key)] == 1
    assert got[("weft_task_run_seconds_count", (("group", "gpu"), ("outcome", "failed"),
                                                ("task", "pkg.mod:fn")))] == 2
    assert not [k for k in got if k[0] == "weft_tasks_killed_total"]  # no series until one ends
