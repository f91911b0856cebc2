"""The manager's admission policy and rejection, without processes.

A real broker file in a temp directory, simulated GPUs, and a stand-in for
the manager that carries exactly what the policy touches (broker, batch,
tid, intake). End-to-end behaviour is in ``test_admission_e2e.py``.
"""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

import pytest

from weft.broker import Broker
from weft.errors import InvalidSpec
from weft.models import SpawnRequest, TaskSpec
from weft.names import SPAWN_REJECTED, SPAWN_REQUESTS, WORKERS_REGISTRY
from weft.resources import Thresholds, pid_create_time, this_host
from weft.runtime import rejection
from weft.runtime.admission_hook import Policy, submitted_at, thresholds_from
from weft.runtime.batch import Batch
from weft.runtime.intake import parse
from weft.settings import Settings

ONE_CARD = json.dumps([{"name": "Sim RTX 4060", "memory_mb": 8192}])
TWO_CARDS = json.dumps([{"name": "A", "memory_mb": 8192}, {"name": "B", "memory_mb": 16384}])


@pytest.fixture
def broker(tmp_path):
    (tmp_path / ".weft").mkdir()
    b = Broker.open(tmp_path, Settings())
    try:
        yield b
    finally:
        b.close()


def policy(sim: str = ONE_CARD, **options) -> Policy:
    return Policy(Settings(gpu_simulate=sim), options)


def submit(broker: Broker, **fields) -> object:
    spec = TaskSpec(command=["true"], **fields)
    body = SpawnRequest(taskspec=spec).model_dump_json(exclude_none=True)
    mid = broker.write(SPAWN_REQUESTS, body)
    return parse(body, mid)


def fake_manager(broker: Broker, tid: str = "1" * 19) -> SimpleNamespace:
    forgotten: list[int] = []
    return SimpleNamespace(broker=broker, batch=Batch(broker), tid=tid,
                           intake=SimpleNamespace(forget=forgotten.append), forgotten=forgotten)


def events(broker: Broker) -> list[dict]:
    return [json.loads(b) for b, _ in broker.peek_all("weft.tasks.log")]


def test_options_become_capacity_and_thresholds():
    p = policy(TWO_CARDS, cpus=1, memory_mb=512, gpu_ids=[1], max_concurrency=3,
               max_cpu_percent=80, min_free_memory=100, max_gpu_util=50, vram_headroom=0)
    caps = p.capacity_record()
    assert caps["cpus"] == 1.0 and caps["memory_mb"] == 512 and caps["max_concurrency"] == 3
    assert caps["gpus"] == [{"index": 1, "name": "B", "memory_mb": 16384}]
    assert caps["gpu_source"] == "simulated" and caps["vram_headroom_mb"] == 0
    assert p.thresholds == Thresholds(80.0, 100, 50.0, 0)
    assert thresholds_from({}) == Thresholds()
    with pytest.raises(InvalidSpec, match="--gpu-ids"):
        policy(ONE_CARD, gpu_ids=[4])


def test_one_plan_admits_what_fits_together(broker):
    p = policy(max_concurrency=4)
    small = [submit(broker, resources={"gpus": 1, "vram_mb": 3000}) for _ in range(3)]
    decided = p.plan(small, time.time())
    assert [d.kind for _, d in decided] == ["admit", "admit", "defer"]
    assert decided[0][1].gpu_ids == (0,)
    assert decided[2][1].reason == "gpu: needs 1 GPU with 3000 MB VRAM, 0 of 1 cards have room"
    assert p.retry_at is not None  # something waits: look again soon


def test_reservations_hold_until_released_and_show_in_load(broker):
    p = policy(max_concurrency=4)
    big = [submit(broker, resources={"gpus": 1, "vram_mb": 5000, "cpus": 0.5, "memory_mb": 64})
           for _ in range(2)]
    first = p.plan(big, time.time())[0]
    p.reserve(first[0], first[1].gpu_ids)
    assert p.plan(big[1:], time.time())[0][1].kind == "defer"
    load = p.load_record()
    assert load["running"] == 1 and load["reserved"] == {
        "cpus": 0.5, "memory_mb": 64, "gpus": 1, "vram_mb_by_gpu": {"0": 5000},
        "exclusive_gpus": [], "tasks_by_gpu": {"0": 1}}
    assert [g["index"] for g in load["gpus_live"]] == [0]  # the card's live readings
    p.release(first[0].tid)
    assert p.plan(big[1:], time.time())[0][1].kind == "admit"
    whole = submit(broker, resources={"gpus": 1})
    p.reserve(whole, (0,))
    assert p.load_record()["reserved"]["exclusive_gpus"] == [0]


def test_priority_then_fifo(broker):
    p = policy(max_concurrency=1)
    low = submit(broker)
    high = submit(broker, priority=3)
    decided = p.plan([low, high], time.time())
    assert [(c.tid, d.kind) for c, d in decided] == [(high.tid, "admit"), (low.tid, "defer")]


def test_submitted_at_is_the_tid_time_or_not_before(broker):
    cand = submit(broker)
    assert abs(submitted_at(cand) - time.time()) < 5
    later = cand.request.model_copy(update={"not_before": time.time() + 100})
    assert submitted_at(SimpleNamespace(message_id=cand.message_id, request=later)) > time.time() + 90


def test_deferred_is_logged_once_per_reason_and_never_for_a_full_house(broker):
    p, m = policy(), fake_manager(broker)
    cand = submit(broker)
    for _ in range(3):
        p.defer(m, cand, "gpu: a")
    p.defer(m, cand, "gpu: b")
    p.defer(m, cand, "gpu: a")  # back to an earlier reason: already said
    p.defer(m, cand, "concurrency: 4 of 4 slots in use")
    m.batch.flush()
    assert [e["reason"] for e in events(broker) if e["event"] == "task_deferred"] == [
        "gpu: a", "gpu: b"]


def test_full_manager_still_sweeps_for_rejections_once_a_second():
    p = policy(max_concurrency=1)
    assert p.wants_dispatch(0, 100.0)
    assert p.wants_dispatch(1, 100.0)  # full, but the first sweep is due
    assert not p.wants_dispatch(1, 100.5)
    assert p.retry_due(101.0) and not p.retry_due(100.9)  # the next sweep is scheduled
    assert p.wants_dispatch(1, 101.0)


def test_reject_moves_the_request_once_and_tells_the_waiter(broker):
    p, m = policy(), fake_manager(broker)
    cand = submit(broker, resources={"gpus": 2}, request_id="r-1")
    (_, decision), = p.plan([cand], time.time())
    assert decision.kind == "reject" and decision.reason == "needs 2 GPUs, this manager has 1"
    p.reject(m, cand, decision.reason)
    m.batch.flush()
    assert broker.peek_one(SPAWN_REQUESTS) is None
    assert broker.peek_one(SPAWN_REJECTED)[1] == cand.message_id
    (result, _), = broker.peek_all(f"T{cand.tid}.outbox")
    result = json.loads(result)
    assert result["status"] == "rejected" and result["reason"] == "insufficient_capacity"
    assert "needs 2 GPUs" in result["error"] and result["request_id"] == "r-1"
    assert m.forgotten == [cand.message_id]
    # A second manager reaching the same conclusion finds nothing to move.
    assert not rejection.reject(broker, m.batch, manager_tid="2" * 19,
                                message_id=cand.message_id, tid=cand.tid, reason="x")
    m.batch.flush()
    assert len([e for e in events(broker) if e["event"] == "task_rejected"]) == 1


def _register(broker: Broker, tid: str, capabilities: dict | None) -> None:
    record = {"tid": tid, "status": "active", "host": this_host(), "pid": os.getpid(),
              "pid_create_time": pid_create_time(os.getpid()), "heartbeat_at": time.time(),
              "heartbeat_interval": 5.0}
    if capabilities is not None:
        record["capabilities"] = capabilities
    broker.write(WORKERS_REGISTRY, json.dumps(record))


def test_request_that_fits_a_bigger_peer_is_left_for_it(broker):
    p, m = policy(), fake_manager(broker)
    big = policy(TWO_CARDS).capacity_record()
    _register(broker, "3" * 19, big)
    cand = submit(broker, resources={"gpus": 2, "vram_mb": 6000})
    p.reject(m, cand, "needs 2 GPUs, this manager has 1")
    m.batch.flush()
    assert broker.peek_one(SPAWN_REQUESTS)[1] == cand.message_id
    too_big = submit(broker, resources={"gpus": 2, "vram_mb": 9000})  # card A is 8 GB
    p.reject(m, too_big, "needs 2 GPUs, this manager has 1")
    assert broker.peek_one(SPAWN_REJECTED)[1] == too_big.message_id


def test_unknown_peer_capacity_counts_as_might_fit(broker):
    p, m = policy(), fake_manager(broker)
    _register(broker, "4" * 19, None)
    cand = submit(broker, resources={"gpus": 2})
    p.reject(m, cand, "needs 2 GPUs, this manager has 1")
    assert broker.peek_one(SPAWN_REJECTED) is None


class _OneBusyCard:
    """A GPU reader (the one thing tests may fake) whose card lists a process."""

    source = "fake"

    def __init__(self, pid: int, used_mb: int) -> None:
        self.pid, self.used_mb = pid, used_mb

    def devices(self):
        from weft.resources import GpuDevice

        return [GpuDevice(0, "GPU-F", "Fake", 8192, self.used_mb, 8192 - self.used_mb, 0.0,
                          ((self.pid, self.used_mb),))]


def test_vram_used_by_our_own_task_tree_is_not_counted_twice(broker):
    import subprocess
    import sys

    from weft.resources import HostTelemetry, process_tree_pids

    sleeper = "import time; time.sleep(60)"
    parent = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {sleeper!r}]).wait()"
    proc = subprocess.Popen([sys.executable, "-c", parent], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while len(process_tree_pids(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        grandchild = max(process_tree_pids(proc.pid) - {proc.pid})
        p = policy()
        p.telemetry = HostTelemetry(_OneBusyCard(grandchild, 4000), ttl=0)
        running = submit(broker, resources={"gpus": 1, "vram_mb": 4000})
        p.reserve(running, (0,))
        cand = submit(broker, resources={"gpus": 1, "vram_mb": 3000})
        # 4000 reserved (and used by our own grandchild) + 3000 + 256 <= 8192
        assert p.plan([cand], time.time(), [proc.pid])[0][1].kind == "admit"
        # The same use by a process weft did not start is foreign: 8000 + 3000 > 8192
        assert p.plan([cand], time.time(), [])[0][1].kind == "defer"
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)
