"""The never-fits judgement uses every manager seen within the window (issue 11, item 8).

A request no live manager can fit, but that a manager seen within
``WEFT_MANAGER_HISTORY_WINDOW`` (24 h by default) could, waits as
``deferred`` with the reason; only when no manager seen in the window could
ever fit it is it rejected, and the text names the best capacity in the
project, not the rejecting manager's own.
"""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

import pytest
from conftest import wait_for

from weft.broker import Broker
from weft.models import SpawnRequest, TaskSpec
from weft.names import SPAWN_REJECTED, SPAWN_REQUESTS, WORKERS_REGISTRY
from weft.resources import Capacity, GpuSlot, Request, pid_create_time, this_host
from weft.resources.project_fit import Seen, judge, window_text
from weft.runtime.admission_hook import Policy
from weft.runtime.batch import Batch
from weft.runtime.intake import parse
from weft.settings import Settings

DAY = 86400.0
ONE_CARD = json.dumps([{"name": "Sim RTX 4060", "memory_mb": 8192}])
TWO_CARDS = json.dumps([{"name": "Sim A", "memory_mb": 8192}, {"name": "Sim B", "memory_mb": 8192}])


def _cap(cpus=4.0, memory_mb=8000, gpus=0, vram=8192):
    return Capacity(cpus, memory_mb, tuple(GpuSlot(i, f"G{i}", vram) for i in range(gpus)), 8)


def _req(**needs):
    return Request(key="t", cpus=needs.get("cpus", 0.0), memory_mb=needs.get("memory_mb", 0),
                   gpus=needs.get("gpus", 0), vram_mb=needs.get("vram_mb", 0))


# -- the pure judgement -------------------------------------------------------
def test_a_live_manager_that_fits_takes_it():
    seen = [Seen("1", "cpu", True, _cap()), Seen("2", "gpu", True, _cap(gpus=2))]
    assert judge(_req(gpus=1), seen, DAY).kind == "live"


def test_only_an_absent_manager_fits_so_it_waits_naming_it():
    seen = [Seen("1", "cpu", True, _cap()), Seen("2", "gpu-box", False, _cap(gpus=2))]
    verdict = judge(_req(gpus=1), seen, DAY)
    assert verdict.kind == "wait"
    assert "gpu-box (4 CPUs, 8000 MB, 2 GPUs of up to 8192 MB)" in verdict.reason
    assert "last 24h" in verdict.reason and "needs 1 GPU" in verdict.reason


def test_unknown_capacity_counts_as_might_fit_live_or_absent():
    assert judge(_req(gpus=1), [Seen("1", "a", True, None)], DAY).kind == "live"
    verdict = judge(_req(gpus=1), [Seen("1", "a", False, None)], DAY)
    assert verdict.kind == "wait" and "capacity unknown" in verdict.reason


@pytest.mark.parametrize(("needs", "text"), [
    ({"gpus": 4}, "needs 4 GPUs; the most any manager seen in the last 24h has is 2 (gpu-box)"),
    ({"cpus": 64}, "needs 64 CPUs; the most any manager seen in the last 24h has is 16 (big)"),
    ({"memory_mb": 10**6}, "needs 1000000 MB memory; the most any manager seen in the last 24h "
                           "has is 64000 MB (big)"),
    ({"gpus": 1, "vram_mb": 9000}, "needs 1 GPU with 9000 MB VRAM (+256 MB headroom); the most "
                                   "any manager seen in the last 24h has is 0 such cards"),
])
def test_rejection_names_the_best_capacity_in_the_project(needs, text):
    seen = [Seen("1", "cpu", True, _cap()), Seen("2", "gpu-box", True, _cap(gpus=2)),
            Seen("3", "big", False, _cap(cpus=16, memory_mb=64000))]
    verdict = judge(_req(**needs), seen, DAY)
    assert verdict.kind == "reject"
    assert verdict.reason.startswith(text), verdict.reason
    assert "this manager" not in verdict.reason


def test_no_single_manager_has_everything():
    seen = [Seen("1", "fat", True, _cap(cpus=32)), Seen("2", "gpu", True, _cap(gpus=1))]
    verdict = judge(_req(cpus=16, gpus=1), seen, 3600)
    assert verdict.kind == "reject" and "no single manager seen in the last 1h" in verdict.reason


def test_window_text():
    assert [window_text(s) for s in (DAY, 3600, 90, 120, 0.5)] == ["24h", "1h", "90s", "2m", "0.5s"]


# -- the policy reads the registry's history -----------------------------------
@pytest.fixture
def broker(tmp_path):
    (tmp_path / ".weft").mkdir()
    b = Broker.open(tmp_path, Settings())
    try:
        yield b
    finally:
        b.close()


def _register(broker, tid, capabilities, *, status="stopped", age=0.0, host=None):
    broker.write(WORKERS_REGISTRY, json.dumps({
        "tid": tid, "role": "manager", "status": status, "host": host or this_host(),
        "pid": os.getpid(), "pid_create_time": pid_create_time(os.getpid()),
        "heartbeat_at": time.time() - age, "heartbeat_interval": 5.0,
        "capabilities": capabilities}))


def _submit(broker, **resources):
    body = SpawnRequest(taskspec=TaskSpec(command=["true"], resources=resources)) \
        .model_dump_json(exclude_none=True)
    return parse(body, broker.write(SPAWN_REQUESTS, body))


def _manager(broker):
    forgotten: list[int] = []
    return SimpleNamespace(broker=broker, batch=Batch(broker), tid="1" * 19,
                           intake=SimpleNamespace(forget=forgotten.append))


def _events(broker, name):
    return [e for b, _ in broker.peek_all("weft.tasks.log")
            if (e := json.loads(b))["event"] == name]


def test_gpu_manager_stopped_an_hour_ago_makes_gpu_work_wait(broker):
    cpu = Policy(Settings(gpu_simulate="[]"), {})
    gpu_caps = Policy(Settings(gpu_simulate=TWO_CARDS), {}).capacity_record()
    _register(broker, "2" * 19, gpu_caps, age=3600, host="gpu-box")
    m = _manager(broker)
    cand = _submit(broker, gpus=1)
    (_, decision), = cpu.plan([cand], time.time())
    assert decision.kind == "reject"
    cpu.reject(m, cand, decision.reason)
    m.batch.flush()
    assert broker.peek_one(SPAWN_REQUESTS)[1] == cand.message_id  # still queued
    assert broker.peek_one(SPAWN_REJECTED) is None
    deferred = _events(broker, "task_deferred")
    assert len(deferred) == 1 and deferred[0]["status"] == "deferred"
    assert "gpu-box" in deferred[0]["reason"] and "2 GPUs" in deferred[0]["reason"]
    cpu.reject(m, cand, decision.reason)  # judged again: logged once per reason
    m.batch.flush()
    assert len(_events(broker, "task_deferred")) == 1


def test_a_manager_seen_before_the_window_no_longer_counts(broker):
    cpu = Policy(Settings(gpu_simulate="[]", manager_history_window=600), {})
    _register(broker, "2" * 19, Policy(Settings(gpu_simulate=TWO_CARDS), {}).capacity_record(),
              age=3600, host="gpu-box")
    _register(broker, "3" * 19, Policy(Settings(gpu_simulate=ONE_CARD), {}).capacity_record(),
              age=60, host="small-gpu")
    m = _manager(broker)
    cand = _submit(broker, gpus=2)
    cpu.reject(m, cand, "needs 2 GPUs, this manager has 0")
    m.batch.flush()
    assert broker.peek_one(SPAWN_REJECTED)[1] == cand.message_id
    rejected, = _events(broker, "task_rejected")
    assert "needs 2 GPUs; the most any manager seen in the last 10m has is 1 (small-gpu)" \
        in rejected["error"]
    assert rejected["details"]["window"] == "10m"


# -- end to end: a GPU host's manager is down, GPU work waits for it ------------------------
def test_gpu_work_waits_for_a_rebooting_gpu_manager(project, client, monkeypatch):
    monkeypatch.setenv("WEFT_GPU_SIMULATE", TWO_CARDS)
    gpu = client.workers.start(name="gpu")
    project.track(gpu.pid)
    client.workers.stop(gpu.tid)  # the GPU host goes down for a reboot
    monkeypatch.setenv("WEFT_GPU_SIMULATE", "[]")
    cpu = client.workers.start(name="cpu")
    project.track(cpu.pid)
    tid = project.cli("run", "--no-wait", "--gpus", "1", "--", "sh", "-c",
                      "echo $CUDA_VISIBLE_DEVICES").stdout.strip()

    def deferred():
        info = json.loads(project.cli("status", tid, "--json").stdout)
        return info if info["status"] == "deferred" else None

    info = wait_for(deferred, what="the task deferred, waiting for the GPU manager")
    assert "waiting for a manager seen in the last 24h" in info["reason"]
    assert "2 GPUs" in info["reason"]
    live = json.loads(project.cli("task", "status", tid, "--json").stdout)
    assert live["status"] == "deferred" and live["details"]["reason"] == info["reason"]
    text = project.cli("task", "status", tid).stdout
    assert "deferred" in text and "waiting for a manager" in text
    overview = project.cli("status").stdout
    assert "deferred  1 task(s) waiting" in overview and "waiting for a manager" in overview
    assert project.rows("weft.spawn.rejected") == []
    monkeypatch.setenv("WEFT_GPU_SIMULATE", TWO_CARDS)
    back = client.workers.start(name="gpu")  # the GPU host is back
    project.track(back.pid)
    result = client.task(tid).wait(timeout=30)
    assert result.status == "completed" and result.stdout == "0\n"
