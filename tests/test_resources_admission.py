"""Admission is pure, so it is tested as a table of situations plus properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weft.models.taskspec import Resources
from weft.resources import (
    Admit,
    Capacity,
    Defer,
    GpuDevice,
    GpuSlot,
    HostReadings,
    Reject,
    Request,
    Reservation,
    Thresholds,
    decide,
    effective_priority,
    order,
    plan,
    rejection_reason,
)

T = Thresholds(max_cpu_percent=95.0)


def card(index: int = 0, total: int = 8192, used: int = 0, util: float | None = 0.0, procs=()):
    return GpuDevice(index, f"GPU-{index}", "Sim", total, used, total - used, util, tuple(procs))


def host(*gpus: GpuDevice, cpu_pct: float = 10.0, avail: int = 16000) -> HostReadings:
    return HostReadings(4, cpu_pct, 16384, avail, tuple(gpus), 0.0)


def cap(cpus: float = 4.0, memory: int = 16384, gpus=(), conc: int = 8) -> Capacity:
    slots = tuple(GpuSlot(g.index, g.name, g.memory_total_mb) for g in gpus)
    return Capacity(cpus, memory, slots, conc)


def req(key="t", cpus=0.0, mem=0, gpus=0, vram=0, prio=0, at=0.0) -> Request:
    return Request(key, cpus, mem, gpus, vram, prio, at)


def res(key="r", cpus=0.0, mem=0, gpu_ids=(), vram=0) -> Reservation:
    return Reservation(key, cpus, mem, tuple(gpu_ids), vram)


ONE = card(0)
TWO = (card(0), card(1))


# ---------------------------------------------------------------- decide table

CASES = [
    # (id, request, capacity, reservations, readings, thresholds, expected)
    ("empty admits", req(), cap(), [], host(), T, Admit(())),
    ("fits exactly", req(cpus=4, mem=16384), cap(), [], host(avail=16384), T, Admit(())),
    (
        "reject cpus",
        req(cpus=64),
        cap(cpus=2),
        [],
        host(),
        T,
        Reject("needs 64 CPUs, this manager has 2"),
    ),
    (
        "reject memory",
        req(mem=9000),
        cap(memory=8192),
        [],
        host(),
        T,
        Reject("needs 9000 MB memory, this manager has 8192 MB"),
    ),
    (
        "reject gpus",
        req(gpus=2, vram=100),
        cap(gpus=[ONE]),
        [],
        host(ONE),
        T,
        Reject("needs 2 GPUs, this manager has 1"),
    ),
    ("reject no gpu", req(gpus=1), cap(), [], host(), T, Reject("needs 1 GPU, this manager has 0")),
    (
        "reject vram+headroom",
        req(gpus=1, vram=8000),
        cap(gpus=[ONE]),
        [],
        host(ONE),
        T,
        Reject(
            "needs 1 GPU with 8000 MB VRAM (+256 MB headroom), 0 of 1 cards are that large"
            " (largest 8192 MB)"
        ),
    ),
    (
        "reject even when also busy",
        req(cpus=8),
        cap(conc=1),
        [res()],
        host(cpu_pct=100),
        T,
        Reject("needs 8 CPUs, this manager has 4"),
    ),
    (
        "concurrency full",
        req(),
        cap(conc=2),
        [res("a"), res("b")],
        host(),
        T,
        Defer("concurrency: 2 of 2 slots in use"),
    ),
    (
        "cpus reserved",
        req(cpus=2),
        cap(),
        [res(cpus=3)],
        host(),
        T,
        Defer("cpus: needs 2, 1 of 4 unreserved"),
    ),
    (
        "fractional cpus sum exactly",
        req(cpus=0.3),
        cap(cpus=0.6),
        [res(cpus=0.1), res("s", cpus=0.2)],
        host(),
        T,
        Admit(()),
    ),
    (
        "memory reserved",
        req(mem=4096),
        cap(memory=8192),
        [res(mem=6000)],
        host(),
        T,
        Defer("memory: needs 4096 MB, 2192 of 8192 MB unreserved"),
    ),
    ("host cpu busy", req(), cap(), [], host(cpu_pct=99.0), T, Defer("host cpu: busier than 95%")),
    ("host cpu at limit admits", req(), cap(), [], host(cpu_pct=95.0), T, Admit(())),
    (
        "host free below minimum",
        req(),
        cap(),
        [],
        host(avail=500),
        Thresholds(min_free_memory_mb=1024),
        Defer("host memory: less than 1024 MB free"),
    ),
    (
        "host free below request",
        req(mem=2048),
        cap(),
        [],
        host(avail=1000),
        T,
        Defer("host memory: less than the 2048 MB requested is free"),
    ),
    (
        "gpu vram reserved",
        req(gpus=1, vram=5000),
        cap(gpus=[ONE]),
        [res(gpu_ids=[0], vram=5000)],
        host(ONE),
        T,
        Defer("gpu: needs 1 GPU with 5000 MB VRAM, 0 of 1 cards have room"),
    ),
    (
        "gpu foreign use",
        req(gpus=1, vram=5000),
        cap(gpus=[ONE]),
        [],
        host(card(used=4000, procs=[(999, 4000)])),
        T,
        Defer("gpu: needs 1 GPU with 5000 MB VRAM, 0 of 1 cards have room"),
    ),
    (
        "gpu own use not foreign",
        req(gpus=1, vram=3000),
        cap(gpus=[ONE]),
        [res(gpu_ids=[0], vram=4000)],
        host(card(used=4000, procs=[(42, 4000)])),
        T,
        Admit((0,)),
    ),
    (
        "gpu own use over reservation counts",
        req(gpus=1, vram=3000),
        cap(gpus=[ONE]),
        [res(gpu_ids=[0], vram=1000)],
        host(card(used=6000, procs=[(42, 6000)])),
        T,
        Defer("gpu: needs 1 GPU with 3000 MB VRAM, 0 of 1 cards have room"),
    ),
    (
        "gpu simulated used_mb is foreign",
        req(gpus=1, vram=3000),
        cap(gpus=[ONE]),
        [],
        host(card(used=5000)),
        T,
        Defer("gpu: needs 1 GPU with 3000 MB VRAM, 0 of 1 cards have room"),
    ),
    (
        "gpu busy",
        req(gpus=1, vram=100),
        cap(gpus=[ONE]),
        [],
        host(card(util=97.0)),
        Thresholds(max_gpu_util_percent=90),
        Defer("gpu: needs 1 GPU with 100 MB VRAM, 0 of 1 cards have room"),
    ),
    (
        "gpu util unknown is fine",
        req(gpus=1, vram=100),
        cap(gpus=[ONE]),
        [],
        host(card(util=None)),
        Thresholds(max_gpu_util_percent=90),
        Admit((0,)),
    ),
    (
        "gpu held exclusively",
        req(gpus=1, vram=100),
        cap(gpus=[ONE]),
        [res(gpu_ids=[0], vram=0)],
        host(ONE),
        T,
        Defer("gpu: needs 1 GPU with 100 MB VRAM, 0 of 1 cards have room"),
    ),
    (
        "whole-card request needs weft-free card",
        req(gpus=1),
        cap(gpus=[ONE]),
        [res(gpu_ids=[0], vram=100)],
        host(ONE),
        T,
        Defer("gpu: needs 1 whole GPU, 0 of 1 cards have room"),
    ),
    (
        "whole-card request picks free card",
        req(gpus=1),
        cap(gpus=TWO),
        [res(gpu_ids=[0], vram=100)],
        host(*TWO),
        T,
        Admit((1,)),
    ),
    (
        "card missing from readings",
        req(gpus=1, vram=100),
        cap(gpus=[ONE]),
        [],
        host(),
        T,
        Defer("gpu: needs 1 GPU with 100 MB VRAM, 0 of 1 cards have room"),
    ),
    (
        "most free card first",
        req(gpus=1, vram=1000),
        cap(gpus=TWO),
        [res(gpu_ids=[0], vram=500)],
        host(*TWO),
        T,
        Admit((1,)),
    ),
    (
        "tie goes to lowest index",
        req(gpus=2, vram=1000),
        cap(gpus=TWO),
        [],
        host(*TWO),
        T,
        Admit((0, 1)),
    ),
    (
        "headroom configurable",
        req(gpus=1, vram=8192),
        cap(gpus=[ONE]),
        [],
        host(ONE),
        Thresholds(vram_headroom_mb=0),
        Admit((0,)),
    ),
]


@pytest.mark.parametrize(
    "request_, capacity, reservations, readings, thresholds, expected",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide_table(request_, capacity, reservations, readings, thresholds, expected):
    got = decide(
        request_, capacity, reservations, readings, thresholds, 0.0, own_pids=frozenset({42})
    )
    assert got == expected
    assert got.kind == type(expected).__name__.lower()


def test_request_from_resources_and_reservation():
    r = Request.from_resources("tid", Resources(cpus=1.5, memory_mb=64, gpus=1, vram_mb=10), 3, 9.0)
    assert r == Request("tid", 1.5, 64, 1, 10, 3, 9.0)
    assert r.reservation((2,)) == Reservation("tid", 1.5, 64, (2,), 10)
    with pytest.raises(ValueError):
        Request("x", -1.0, 0, 0, 0)


def test_rejection_reason_is_none_when_it_could_fit():
    assert rejection_reason(req(cpus=4, gpus=1, vram=7936), cap(gpus=[ONE]), T) is None


# ---------------------------------------------------------------- the GPU scenarios

SIM = card(0, total=8192)


def _admitted(decisions):
    return [r.key for r, d in decisions if isinstance(d, Admit)]


def test_three_5000mb_tasks_never_share_the_8gb_card():
    capacity = cap(gpus=[SIM], conc=4)
    pending = [req(f"t{i}", gpus=1, vram=5000, at=float(i)) for i in range(3)]
    started = []
    for step in range(3):
        out = plan(pending, capacity, [], host(SIM), T, float(step))
        admitted = [(r, d) for r, d in out if isinstance(d, Admit)]
        assert len(admitted) == 1  # never two at once, even from an idle card
        running, decision = admitted[0]
        assert decision.gpu_ids == (0,)
        started.append(running.key)
        pending.remove(running)
        # While it runs, nothing else gets the card.
        held = [running.reservation(decision.gpu_ids)]
        assert _admitted(plan(pending, capacity, held, host(SIM), T, step + 0.5)) == []
    assert started == ["t0", "t1", "t2"]


def test_two_3000mb_tasks_share_the_8gb_card():
    reqs = [req("a", gpus=1, vram=3000), req("b", gpus=1, vram=3000, at=1.0)]
    out = plan(reqs, cap(gpus=[SIM], conc=4), [], host(SIM), T, 0.0)
    assert [d for _, d in out] == [Admit((0,)), Admit((0,))]


def test_max_concurrency_caps_one_step_and_later_steps():
    reqs = [req(f"t{i}", at=float(i)) for i in range(5)]
    out = plan(reqs, cap(conc=2), [], host(), T, 0.0)
    assert _admitted(out) == ["t0", "t1"]
    assert {d.reason for _, d in out[2:]} == {"concurrency: 2 of 2 slots in use"}
    out = plan(reqs[2:], cap(conc=2), [res("t0")], host(), T, 1.0)
    assert _admitted(out) == ["t2"]


def test_plan_subtracts_admitted_memory_from_live_free_memory():
    reqs = [req("a", mem=3000), req("b", mem=3000, at=1.0)]
    out = plan(reqs, cap(), [], host(avail=4000), T, 0.0)
    assert _admitted(out) == ["a"]
    assert out[1][1] == Defer("host memory: less than the 3000 MB requested is free")


def test_defer_reason_is_stable_across_fluctuating_readings():
    r = req(gpus=1, vram=5000)
    reasons = {
        decide(
            r, cap(gpus=[ONE]), [res(gpu_ids=[0], vram=5000)], host(ONE, cpu_pct=p), T, now
        ).reason
        for p, now in [(1.0, 0.0), (40.0, 5.0), (80.0, 99.0)]
    }
    assert len(reasons) == 1
    busy = {decide(req(), cap(), [], host(cpu_pct=p), T, 0.0).reason for p in (96.0, 99.5, 100.0)}
    assert busy == {"host cpu: busier than 95%"}


# ---------------------------------------------------------------- ordering, ageing, backfill


def test_order_priority_then_fifo_then_key():
    reqs = [req("c", at=2.0), req("b", at=1.0), req("hi", prio=5, at=9.0), req("a", at=1.0)]
    assert [r.key for r in order(reqs, 10.0)] == ["hi", "a", "b", "c"]


@pytest.mark.parametrize(
    "waited, boost", [(0.0, 0), (30.0, 0), (30.5, 1), (59.9, 1), (60.0, 2), (95.0, 3)]
)
def test_effective_priority_ageing(waited, boost):
    assert effective_priority(req(prio=2, at=100.0), 100.0 + waited, 30.0) == 2 + boost


def test_ageing_lets_an_old_low_priority_request_overtake():
    old = req("old", prio=0, at=0.0)
    assert order([old, req("new", prio=2, at=40.0)], 40.0)[0].key == "new"  # old has +1 only
    assert order([old, req("new", prio=2, at=100.0)], 100.0)[0].key == "old"  # old has +3
    assert order([old, req("new", prio=2, at=1e3)], 1e3, age_boost_after=0)[0].key == "new"


def test_backfill_passes_a_young_blocked_request():
    big, small = req("big", cpus=3, at=0.0), req("small", cpus=1, at=1.0)
    out = plan([big, small], cap(), [res("run", cpus=2)], host(), T, 10.0)
    assert out[0] == (big, Defer("cpus: needs 3, 2 of 4 unreserved"))
    assert out[1] == (small, Admit(()))


def test_aged_head_holds_a_blocking_reservation():
    big, small = req("big", cpus=3, at=0.0), req("small", cpus=1, at=100.0)
    out = plan([big, small], cap(), [res("run", cpus=2)], host(), T, 61.0)
    assert out[1] == (small, Defer("backfill: holding room for big"))


def test_aged_head_still_lets_through_what_it_does_not_need():
    big = req("big", cpus=3, at=0.0)
    mem_only = req("mem", mem=100, at=100.0)
    out = plan([big, mem_only], cap(), [res("run", cpus=2)], host(), T, 61.0)
    assert out[1] == (mem_only, Admit(()))


def test_aged_head_keeps_a_concurrency_slot():
    big = req("big", cpus=3, at=0.0)
    reqs = [big, req("x", at=100.0), req("y", at=101.0)]
    out = plan(reqs, cap(conc=3), [res("run", cpus=2)], host(), T, 61.0)
    assert [d.kind for _, d in out] == ["defer", "admit", "defer"]
    assert out[2][1] == Defer("backfill: holding room for big")


def test_aged_gpu_head_blocks_gpu_backfill_on_cards_it_could_use():
    big_card, small_card = card(0, total=24000), card(1, total=8000)
    c = cap(gpus=[big_card, small_card])
    running = [res("run", gpu_ids=[0], vram=10000)]
    head = req("head", gpus=1, vram=20000, at=0.0)
    on_small = req("small", gpus=1, vram=4000, at=100.0)
    fits_big_only = req("mid", gpus=1, vram=9000, at=101.0)
    out = plan([head, on_small, fits_big_only], c, running, host(big_card, small_card), T, 61.0)
    assert out[0][1].kind == "defer"
    assert out[1][1] == Admit((1,))  # the head could never use card 1
    assert out[2][1] == Defer("backfill: holding room for head")


def test_blocked_request_is_not_starved_by_a_stream_of_small_ones():
    """Simulate: each small task runs 10 s, new small ones arrive every 5 s."""
    capacity = cap(cpus=4)
    pending = [req("big", cpus=4, at=0.0)]
    running: dict[str, tuple[Reservation, float]] = {"seed": (res("seed", cpus=1), 10.0)}
    big_started = None
    for tick in range(0, 400, 5):
        now = float(tick)
        running = {k: v for k, v in running.items() if v[1] > now}
        pending.append(req(f"s{tick}", cpus=1, at=now))
        held = [r for r, _ in running.values()]
        for r, d in plan(pending, capacity, held, host(), T, now):
            if isinstance(d, Admit):
                running[r.key] = (r.reservation(d.gpu_ids), now + 10.0)
                pending.remove(r)
                if r.key == "big":
                    big_started = now
        if big_started is not None:
            break
    assert big_started is not None and big_started <= 60.0 + 10.0 + 5.0


# ---------------------------------------------------------------- properties

cards_st = st.lists(
    st.builds(
        lambda total, used, util: (total, min(used, total), util),
        st.integers(256, 24000),
        st.integers(0, 8000),
        st.one_of(st.none(), st.floats(0, 100)),
    ),
    max_size=4,
)
requests_st = st.lists(
    st.builds(
        req,
        key=st.text("abcdef", min_size=1, max_size=4),
        cpus=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.5, 8.0]),
        mem=st.integers(0, 20000),
        gpus=st.integers(0, 3),
        vram=st.integers(0, 12000),
        prio=st.integers(-2, 2),
        at=st.floats(0, 200),
    ),
    max_size=12,
    unique_by=lambda r: r.key,
)


@st.composite
def situations(draw):
    specs = draw(cards_st)
    gpus = tuple(card(i, t, u, util) for i, (t, u, util) in enumerate(specs))
    capacity = cap(
        cpus=draw(st.sampled_from([0.5, 1.0, 4.0, 6.5])),
        memory=draw(st.integers(0, 32000)),
        gpus=gpus,
        conc=draw(st.integers(1, 6)),
    )
    readings = host(*gpus, cpu_pct=draw(st.floats(0, 100)), avail=draw(st.integers(0, 40000)))
    thresholds = Thresholds(
        max_cpu_percent=draw(st.sampled_from([50.0, 95.0, 100.0])),
        min_free_memory_mb=draw(st.sampled_from([0, 1024])),
        max_gpu_util_percent=draw(st.sampled_from([80.0, 100.0])),
        vram_headroom_mb=draw(st.sampled_from([0, 256, 1024])),
    )
    return capacity, readings, thresholds, draw(requests_st), draw(st.floats(0, 300))


def _exceeds_totals(r: Request, c: Capacity, t: Thresholds) -> bool:
    big_cards = [g for g in c.gpus if g.memory_total_mb >= r.vram_mb + t.vram_headroom_mb]
    return (
        r.cpus > c.cpus
        or r.memory_mb > c.memory_mb
        or r.gpus > len(c.gpus)
        or (r.gpus > 0 and r.vram_mb > 0 and len(big_cards) < r.gpus)
    )


@settings(max_examples=300, deadline=None, database=None)
@given(situations())
def test_plan_never_overcommits(situation):
    capacity, readings, thresholds, requests, now = situation
    out = plan(requests, capacity, [], readings, thresholds, now)
    assert sorted(r.key for r, _ in out) == sorted(r.key for r in requests)
    admitted = [r.reservation(d.gpu_ids) for r, d in out if isinstance(d, Admit)]
    assert len(admitted) <= capacity.max_concurrency
    assert sum(a.cpus for a in admitted) <= capacity.cpus + 1e-9
    assert sum(a.memory_mb for a in admitted) <= capacity.memory_mb
    slots = {g.index: g for g in capacity.gpus}
    used = {g.index: g.memory_used_mb for g in readings.gpus}
    for r, d in out:
        if isinstance(d, Admit):
            assert len(d.gpu_ids) == r.gpus == len(set(d.gpu_ids))
            assert set(d.gpu_ids) <= set(slots)
    for index, slot in slots.items():
        on_card = [a for a in admitted if index in a.gpu_ids]
        if any(a.exclusive for a in on_card):
            assert len(on_card) == 1
        elif on_card:
            vram = sum(a.vram_mb for a in on_card)
            assert vram + used[index] + thresholds.vram_headroom_mb <= slot.memory_total_mb


@settings(max_examples=300, deadline=None, database=None)
@given(situations(), st.data())
def test_decide_is_deterministic_and_rejects_only_what_exceeds_totals(situation, data):
    capacity, readings, thresholds, requests, now = situation
    # Reservations from a real plan, so they are consistent with the capacity.
    held = [
        r.reservation(d.gpu_ids)
        for r, d in plan(requests, capacity, [], readings, thresholds, now)
        if isinstance(d, Admit)
    ]
    probe = data.draw(requests_st.filter(bool)).pop()
    first = decide(probe, capacity, held, readings, thresholds, now)
    assert decide(probe, capacity, held, readings, thresholds, now) == first
    shuffled = data.draw(st.permutations(held))
    assert decide(probe, capacity, shuffled, readings, thresholds, now) == first
    assert (first.kind == "reject") == _exceeds_totals(probe, capacity, thresholds)
