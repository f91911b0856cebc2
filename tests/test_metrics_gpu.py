"""Per-GPU gauges in ``weft metrics`` (issue 14): reserved VRAM, tasks, and the
driver's live readings, labelled ``manager`` and ``gpu``, as each manager
publishes them in its registry record. NVML is the fake of
test_resources_gpu.py (there is no GPU here); a manager without a driver
publishes no card and the gauges are absent, without an error."""

from __future__ import annotations

import json
import shutil
import subprocess

import pynvml
import pytest
from conftest import wait_for
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_resources_gpu import FakeNvml

from weft.metrics.registry import manager_families
from weft.resources import Reservation
from weft.runtime.admission_hook import Policy
from weft.settings import Settings

MIB = 1024 * 1024
GPU_FAMILIES = ("weft_gpu_memory_bytes", "weft_gpu_reserved_vram_bytes", "weft_gpu_tasks",
                "weft_gpu_exclusive", "weft_gpu_memory_used_bytes", "weft_gpu_utilization_ratio")


def _samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _exposition(policy: Policy) -> dict:
    record = {"tid": "M", "capabilities": policy.capacity_record(), "load": policy.load_record()}

    class Fixed:
        def collect(self):
            return manager_families([json.loads(json.dumps(record))], {})  # as in the broker

    reg = CollectorRegistry()
    reg.register(Fixed())
    return _samples(generate_latest(reg).decode())


def test_nvml_readings_and_reservations_per_card(monkeypatch):
    fake = FakeNvml(monkeypatch)
    fake.add("A100", 40960, 1000, util=37)
    fake.add("T4", 15360, 300)
    fake.fail[("nvmlDeviceGetUtilizationRates", 1)] = pynvml.NVML_ERROR_NOT_SUPPORTED
    policy = Policy(Settings(), {})
    policy.reservations["t1"] = Reservation("t1", 1, 0, (0,), 500)
    policy.reservations["t2"] = Reservation("t2", 1, 0, (0,), 250)
    got = _exposition(policy)
    card0, card1 = (("gpu", "0"), ("manager", "M")), (("gpu", "1"), ("manager", "M"))
    assert got[("weft_gpu_memory_bytes", card0)] == 40960 * MIB
    assert got[("weft_gpu_reserved_vram_bytes", card0)] == 750 * MIB
    assert got[("weft_gpu_tasks", card0)] == 2 and got[("weft_gpu_tasks", card1)] == 0
    assert got[("weft_gpu_memory_used_bytes", card0)] == 1000 * MIB
    assert got[("weft_gpu_memory_used_bytes", card1)] == 300 * MIB
    assert got[("weft_gpu_utilization_ratio", card0)] == pytest.approx(0.37)
    assert ("weft_gpu_utilization_ratio", card1) not in got  # the driver cannot say


def test_no_driver_means_no_gpu_series_and_no_error(monkeypatch):
    fake = FakeNvml(monkeypatch)
    fake.init_error = pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    policy = Policy(Settings(), {})
    assert policy.load_record()["gpus_live"] == []
    got = _exposition(policy)
    assert not [k for k in got if k[0].startswith(GPU_FAMILIES)]
    assert got[("weft_capacity_gpus", (("manager", "M"),))] == 0


def test_weft_metrics_shows_each_managers_cards(project, client):
    cards = json.dumps([{"memory_mb": 1000, "used_mb": 250, "utilization_pct": 40},
                        {"memory_mb": 2000, "used_mb": 0}])
    started = project.cli("worker", "start", "--json", env={"WEFT_GPU_SIMULATE": cards})
    assert started.returncode == 0, started.stderr
    tid = json.loads(started.stdout)["tid"]
    project.track(json.loads(started.stdout)["pid"])
    client.auto_start = False
    task = client.submit(command=["sleep", "30"], resources={"gpus": 1, "vram_mb": 100})
    wait_for(lambda: any(e["event"] == "task_started" for e in project.events(task.tid)),
             what="the GPU task to start")
    card0, card1 = (("gpu", "0"), ("manager", tid)), (("gpu", "1"), ("manager", tid))

    def on_cards(text: str) -> list[float]:
        got = _samples(text)
        return [got.get(("weft_gpu_tasks", card), 0) for card in (card0, card1)]

    text = wait_for(lambda: (t := client.metrics()) and sum(on_cards(t)) == 1 and t,
                    timeout=15, what="a heartbeat that shows the task on a card")
    got = _samples(text)
    used = card0 if on_cards(text)[0] else card1
    assert got[("weft_gpu_reserved_vram_bytes", used)] == 100 * MIB
    assert got[("weft_gpu_memory_used_bytes", card0)] == 250 * MIB
    assert got[("weft_gpu_memory_used_bytes", card1)] == 0
    assert got[("weft_gpu_utilization_ratio", card0)] == pytest.approx(0.4)
    assert got[("weft_gpu_memory_bytes", card1)] == 2000 * MIB
    task.kill(timeout=30)
    promtool = shutil.which("promtool")
    if promtool is not None:  # every family at once: GPU, broker, labelled task counters
        proc = subprocess.run([promtool, "check", "metrics"], input=client.metrics(),
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stdout + proc.stderr
