"""Capacity: detected from a snapshot, capped by worker-start options."""

from __future__ import annotations

import json

import pytest

from weft.errors import InvalidSpec
from weft.resources import (
    Admit,
    Capacity,
    GpuDevice,
    GpuSlot,
    HostReadings,
    HostTelemetry,
    Reject,
    Request,
    SimulatedReader,
    Thresholds,
    decide,
    detect_capacity,
)


def gpu(index: int, total: int = 8192) -> GpuDevice:
    return GpuDevice(index, f"GPU-{index}", f"card{index}", total, 0, total, 0.0, ())


def snapshot(cpus: int = 4, memory: int = 16000, gpus=()) -> HostReadings:
    return HostReadings(cpus, 0.0, memory, memory, tuple(gpus), 0.0)


def test_defaults_are_what_the_host_has():
    c = detect_capacity(snapshot(gpus=[gpu(1, 4096), gpu(0)]))
    assert c == Capacity(4.0, 16000, (GpuSlot(0, "card0", 8192), GpuSlot(1, "card1", 4096)), 16)


@pytest.mark.parametrize("cpus, expected", [(1, 8), (2, 8), (3, 12), (16, 64)])
def test_default_max_concurrency(cpus, expected):
    assert detect_capacity(snapshot(cpus=cpus)).max_concurrency == expected


def test_options_cap_detected_values():
    c = detect_capacity(
        snapshot(gpus=[gpu(0), gpu(1), gpu(2)]), cpus=1.5, memory_mb=2048, gpus=2, max_concurrency=3
    )
    assert (c.cpus, c.memory_mb, c.max_concurrency) == (1.5, 2048, 3)
    assert [g.index for g in c.gpus] == [0, 1]


def test_asking_for_more_than_exists_caps_at_what_exists():
    c = detect_capacity(snapshot(gpus=[gpu(0)]), cpus=64, memory_mb=10**7, gpus=4)
    assert (c.cpus, c.memory_mb, len(c.gpus)) == (4.0, 16000, 1)


def test_gpu_ids_select_in_order_without_duplicates_then_gpus_counts():
    readings = snapshot(gpus=[gpu(0), gpu(1), gpu(2)])
    assert [g.index for g in detect_capacity(readings, gpu_ids=[2, 0, 2]).gpus] == [2, 0]
    assert [g.index for g in detect_capacity(readings, gpu_ids=[2, 0], gpus=1).gpus] == [2]
    assert detect_capacity(readings, gpus=0).gpus == ()


@pytest.mark.parametrize(
    "options, words",
    [
        ({"gpu_ids": [0, 5]}, "--gpu-ids: unknown GPU id(s) [5]; this host has [0]"),
        ({"cpus": -1}, "--cpus must not be negative"),
        ({"memory_mb": -1}, "--memory must not be negative"),
        ({"gpus": -2}, "--gpus must not be negative"),
        ({"max_concurrency": 0}, "--max-concurrency must be at least 1"),
    ],
)
def test_bad_options_are_usage_errors(options, words):
    with pytest.raises(InvalidSpec) as info:
        detect_capacity(snapshot(gpus=[gpu(0)]), **options)
    assert words in str(info.value)


def test_unknown_gpu_id_on_a_host_without_gpus():
    with pytest.raises(InvalidSpec, match="this host has none"):
        detect_capacity(snapshot(), gpu_ids=[0])


def test_record_is_json_and_round_trips():
    c = detect_capacity(snapshot(gpus=[gpu(0, 24576)]), cpus=2.5)
    record = json.loads(json.dumps(c.to_record()))
    assert record == {
        "cpus": 2.5,
        "memory_mb": 16000,
        "gpus": [{"index": 0, "name": "card0", "memory_mb": 24576}],
        "max_concurrency": 16,
    }
    assert Capacity.from_record(record) == c


def test_simulated_card_end_to_end_through_telemetry_capacity_and_decide():
    host = HostTelemetry(SimulatedReader('[{"name": "Sim RTX 4060", "memory_mb": 8192}]'))
    readings = host.read(0.0)
    capacity = detect_capacity(readings, max_concurrency=4)
    cpu_ok = Thresholds(max_cpu_percent=100.0)
    fits = Request("a", 0.0, 0, 1, 5000)
    assert decide(fits, capacity, [], readings, cpu_ok, 0.0) == Admit((0,))
    two = Request("b", 0.0, 0, 2, 0)
    assert decide(two, capacity, [], readings, cpu_ok, 0.0) == Reject(
        "needs 2 GPUs, this manager has 1"
    )
