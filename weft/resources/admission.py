"""Admission: may this manager start this request now, and on which GPUs?

Everything here is a pure function of its arguments: no I/O, no clock, no
randomness. The manager feeds it (capacity, the reservations of its running
children, a host snapshot, thresholds, ``now``) and acts on the answer:

* :class:`Reject` -- the request exceeds this manager's capacity totals and
  can never run here, however long it waits.
* :class:`Defer` -- it could run here, but not now. The reason is a short
  stable string: its numbers come from the request, the capacity, the
  thresholds and the reservations (plus, for GPUs, how many cards have
  room), never raw live readings such as CPU % or free MB, so the same
  situation yields the same text and the manager can log it once per
  distinct reason.
* :class:`Admit` -- start it now, on ``gpu_ids``.

GPU/VRAM budget, per card::

    max(weft reserved VRAM, VRAM used by weft's processes)
      + VRAM used by everything else      (card used - weft's processes' use)
      + request vram_mb + vram_headroom_mb   <= card total

"Everything else" is the card's used memory minus what NVML attributes to
``own_pids``, so processes NVML cannot name (other containers, the driver)
count as foreign too. A simulated card lists no processes, so its
``memory_used_mb`` is foreign by definition. A card over
``max_gpu_util_percent`` takes nothing new. A request with ``gpus > 0`` and
``vram_mb == 0`` did not say how much it needs, so it is given whole cards:
it needs cards with no weft reservation, and while it holds a card nothing
else weft runs is put there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from weft.resources.gpu_budget import CardBudget, card_budgets, fits_card, place_gpus

if TYPE_CHECKING:
    from weft.models.taskspec import Resources
    from weft.resources.capacity import Capacity
    from weft.resources.telemetry import HostReadings

__all__ = [
    "Admit",
    "Decision",
    "Defer",
    "Reject",
    "Request",
    "Reservation",
    "Thresholds",
    "decide",
    "effective_priority",
    "order",
    "plan",
    "rejection_reason",
]

_EPS = 1e-9  # float slack for summed CPU shares


@dataclass(frozen=True)
class Reservation:
    """What a running child holds; ``vram_mb`` is per assigned GPU.

    A reservation with GPUs and ``vram_mb == 0`` holds its cards exclusively.
    """

    key: str
    cpus: float
    memory_mb: int
    gpu_ids: tuple[int, ...]
    vram_mb: int

    @property
    def exclusive(self) -> bool:
        return bool(self.gpu_ids) and self.vram_mb == 0


@dataclass(frozen=True)
class Request:
    """A pending task's needs; ``key`` identifies it (its TID) in plans."""

    key: str
    cpus: float
    memory_mb: int
    gpus: int
    vram_mb: int
    priority: int = 0
    submitted_at: float = 0.0

    def __post_init__(self) -> None:
        if min(self.cpus, self.memory_mb, self.gpus, self.vram_mb) < 0:
            raise ValueError(f"request {self.key}: resource amounts must not be negative")

    @classmethod
    def from_resources(
        cls, key: str, resources: Resources, priority: int = 0, submitted_at: float = 0.0
    ) -> Request:
        return cls(
            key=key,
            cpus=float(resources.cpus),
            memory_mb=int(resources.memory_mb),
            gpus=int(resources.gpus),
            vram_mb=int(resources.vram_mb),
            priority=priority,
            submitted_at=submitted_at,
        )

    def reservation(self, gpu_ids: Sequence[int] = ()) -> Reservation:
        """The reservation this request holds once admitted on ``gpu_ids``."""
        return Reservation(self.key, self.cpus, self.memory_mb, tuple(gpu_ids), self.vram_mb)


@dataclass(frozen=True)
class Thresholds:
    """Live-reading limits (``weft worker start --max-cpu-percent`` etc.).

    The host CPU gate is off by default (100): a running task's own CPU use
    would otherwise hold back the next one even when it reserved nothing;
    ``--cpus`` reservations are the default CPU gate.
    """

    max_cpu_percent: float = 100.0
    min_free_memory_mb: int = 0
    max_gpu_util_percent: float = 100.0
    vram_headroom_mb: int = 256


@dataclass(frozen=True)
class Admit:
    gpu_ids: tuple[int, ...] = ()
    kind: ClassVar[Literal["admit"]] = "admit"


@dataclass(frozen=True)
class Defer:
    reason: str
    kind: ClassVar[Literal["defer"]] = "defer"


@dataclass(frozen=True)
class Reject:
    reason: str
    kind: ClassVar[Literal["reject"]] = "reject"


Decision = Admit | Defer | Reject


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def rejection_reason(request: Request, capacity: Capacity, thresholds: Thresholds) -> str | None:
    """Why ``request`` can never run under ``capacity``, or None if it could.

    Only totals count here, never live readings or reservations, so a client
    can apply it to the capacity in another manager's registry record.
    """
    if request.cpus > capacity.cpus + _EPS:
        return f"needs {request.cpus:g} CPUs, this manager has {capacity.cpus:g}"
    if request.memory_mb > capacity.memory_mb:
        return f"needs {request.memory_mb} MB memory, this manager has {capacity.memory_mb} MB"
    if request.gpus > len(capacity.gpus):
        return f"needs {_n(request.gpus, 'GPU')}, this manager has {len(capacity.gpus)}"
    if request.gpus and request.vram_mb:
        need = request.vram_mb + thresholds.vram_headroom_mb
        big = [g for g in capacity.gpus if g.memory_total_mb >= need]
        if len(big) < request.gpus:
            largest = max(g.memory_total_mb for g in capacity.gpus)
            return (
                f"needs {_n(request.gpus, 'GPU')} with {request.vram_mb} MB VRAM"
                f" (+{thresholds.vram_headroom_mb} MB headroom), {len(big)} of"
                f" {len(capacity.gpus)} cards are that large (largest {largest} MB)"
            )
    return None


def _reserved_reason(
    request: Request, capacity: Capacity, reservations: Sequence[Reservation]
) -> str | None:
    """Why the reservations of running children leave no room, if they do."""
    if len(reservations) >= capacity.max_concurrency:
        return f"concurrency: {len(reservations)} of {capacity.max_concurrency} slots in use"
    used_cpus = sum(r.cpus for r in reservations)
    if request.cpus > 0 and used_cpus + request.cpus > capacity.cpus + _EPS:
        free = max(0.0, capacity.cpus - used_cpus)
        return f"cpus: needs {request.cpus:g}, {free:g} of {capacity.cpus:g} unreserved"
    used_mem = sum(r.memory_mb for r in reservations)
    if request.memory_mb > 0 and used_mem + request.memory_mb > capacity.memory_mb:
        free_mem = max(0, capacity.memory_mb - used_mem)
        return (
            f"memory: needs {request.memory_mb} MB,"
            f" {free_mem} of {capacity.memory_mb} MB unreserved"
        )
    return None


def _host_reason(request: Request, readings: HostReadings, thresholds: Thresholds) -> str | None:
    """Why the live host readings say "not now", if they do."""
    if readings.cpu_percent > thresholds.max_cpu_percent:
        return f"host cpu: busier than {thresholds.max_cpu_percent:g}%"
    if readings.memory_available_mb < thresholds.min_free_memory_mb:
        return f"host memory: less than {thresholds.min_free_memory_mb} MB free"
    if readings.memory_available_mb < request.memory_mb:
        return f"host memory: less than the {request.memory_mb} MB requested is free"
    return None


def _gpu_reason(request: Request, capacity: Capacity, cards: Sequence[CardBudget]) -> str:
    room = sum(1 for c in cards if fits_card(request, c))
    what = (
        f"{_n(request.gpus, 'whole GPU')}"
        if request.vram_mb == 0
        else f"{_n(request.gpus, 'GPU')} with {request.vram_mb} MB VRAM"
    )
    return f"gpu: needs {what}, {room} of {len(capacity.gpus)} cards have room"


def decide(
    request: Request,
    capacity: Capacity,
    reservations: Sequence[Reservation],
    readings: HostReadings,
    thresholds: Thresholds,
    now: float,
    *,
    own_pids: frozenset[int] = frozenset(),
) -> Decision:
    """Admit, defer or reject one request (see the module docstring).

    Checks run in a fixed order -- capacity totals, concurrency, reserved
    CPUs, reserved memory, host CPU %, host free memory, GPUs -- and the
    first failing one gives the reason. ``now`` is accepted so every input
    of the decision is explicit; the rules themselves do not depend on it.
    """
    never = rejection_reason(request, capacity, thresholds)
    if never is not None:
        return Reject(never)
    reason = _reserved_reason(request, capacity, reservations) or _host_reason(
        request, readings, thresholds
    )
    if reason is not None:
        return Defer(reason)
    if request.gpus == 0:
        return Admit(())
    cards = card_budgets(capacity, reservations, readings, thresholds, own_pids)
    gpu_ids = place_gpus(request, cards)
    if gpu_ids is None:
        return Defer(_gpu_reason(request, capacity, cards))
    return Admit(gpu_ids)


def effective_priority(request: Request, now: float, age_boost_after: float = 30.0) -> int:
    """Priority plus ageing: +1 once it has waited longer than
    ``age_boost_after`` seconds, and +1 per further ``age_boost_after``."""
    waited = now - request.submitted_at
    if age_boost_after <= 0 or waited <= age_boost_after:
        return request.priority
    return request.priority + int((waited - age_boost_after) // age_boost_after) + 1


def order(
    requests: Iterable[Request], now: float, *, age_boost_after: float = 30.0
) -> list[Request]:
    """Effective priority (highest first), then FIFO by ``submitted_at``, then key."""
    return sorted(
        requests,
        key=lambda r: (-effective_priority(r, now, age_boost_after), r.submitted_at, r.key),
    )


def plan(
    requests: Iterable[Request],
    capacity: Capacity,
    reservations: Sequence[Reservation],
    readings: HostReadings,
    thresholds: Thresholds,
    now: float,
    *,
    own_pids: frozenset[int] = frozenset(),
    age_boost_after: float = 30.0,
) -> list[tuple[Request, Decision]]:
    """Decide every pending request for one dispatch step, in :func:`order`.

    Each admission is added to the reservations before the next request is
    decided (and its memory taken off the snapshot's free memory), so one
    step can admit several requests without over-committing.

    Backfill and the blocking reservation: a request that does not fit does
    not stop smaller ones behind it from starting. But once the *head* --
    the first request in order that is deferred -- has waited longer than
    ``2 * age_boost_after`` since ``submitted_at``, later requests are only
    admitted if they leave room for it: after admitting them a concurrency
    slot must remain for the head, and in every resource they take (CPUs,
    memory, GPUs it could use) the head must still fit. Resources the head
    is waiting for therefore drain until it starts; ageing guarantees every
    request eventually becomes the head.
    """
    env = _Env(capacity, thresholds, own_pids)
    held = list(reservations)
    out: list[tuple[Request, Decision]] = []
    head: Request | None = None
    head_seen = False
    for req in order(requests, now, age_boost_after=age_boost_after):
        decision = decide(req, capacity, held, readings, thresholds, now, own_pids=own_pids)
        if isinstance(decision, Admit) and head is not None:
            decision = _backfill(head, req, decision, held, readings, env)
        if isinstance(decision, Admit):
            held.append(req.reservation(decision.gpu_ids))
            free = readings.memory_available_mb - req.memory_mb
            readings = dataclasses.replace(readings, memory_available_mb=free)
        elif isinstance(decision, Defer) and not head_seen:
            head_seen = True
            if now - req.submitted_at > 2 * age_boost_after:
                head = req
        out.append((req, decision))
    return out


@dataclass(frozen=True)
class _Env:
    capacity: Capacity
    thresholds: Thresholds
    own_pids: frozenset[int]


def _backfill(
    head: Request,
    req: Request,
    admit: Admit,
    held: Sequence[Reservation],
    readings: HostReadings,
    env: _Env,
) -> Decision:
    """``admit`` if it leaves room for ``head``; else ``req`` placed only on
    cards the head could never use, if that leaves room; else defer."""
    options = [admit.gpu_ids]
    if req.gpus and head.gpus and head.vram_mb:
        need = head.vram_mb + env.thresholds.vram_headroom_mb
        small = {g.index for g in env.capacity.gpus if g.memory_total_mb < need}
        cards = card_budgets(env.capacity, held, readings, env.thresholds, env.own_pids)
        alternative = place_gpus(req, [c for c in cards if c.index in small])
        if alternative is not None:
            options.append(alternative)
    for gpu_ids in options:
        if _leaves_room(head, req, gpu_ids, [*held, req.reservation(gpu_ids)], readings, env):
            return Admit(gpu_ids)
    return Defer(f"backfill: holding room for {head.key}")


def _leaves_room(
    head: Request,
    candidate: Request,
    gpu_ids: tuple[int, ...],
    trial: Sequence[Reservation],
    readings: HostReadings,
    env: _Env,
) -> bool:
    """Would ``head`` still fit, in everything ``candidate`` takes, after it?"""
    capacity = env.capacity
    if len(trial) + 1 > capacity.max_concurrency:
        return False
    if candidate.cpus > 0 and sum(r.cpus for r in trial) + head.cpus > capacity.cpus + _EPS:
        return False
    used_mem = sum(r.memory_mb for r in trial)
    if candidate.memory_mb > 0 and used_mem + head.memory_mb > capacity.memory_mb:
        return False
    if candidate.gpus == 0 or head.gpus == 0:
        return True
    cards = card_budgets(capacity, trial, readings, env.thresholds, env.own_pids)
    if place_gpus(head, cards) is not None:
        return True
    # The head cannot be placed either way: harmless only if the candidate's
    # cards are ones the head could never use (too small for its VRAM).
    need = head.vram_mb + env.thresholds.vram_headroom_mb
    sizes = {g.index: g.memory_total_mb for g in capacity.gpus}
    return head.vram_mb > 0 and all(sizes[i] < need for i in gpu_ids)
