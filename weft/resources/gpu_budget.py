"""VRAM budgeting: how much of each card a new request could still get.

Split from :mod:`weft.resources.admission` (which owns the rules and the
reasons); this module only does the per-card arithmetic::

    free = card total
           - max(weft reserved VRAM, VRAM used by weft's own processes)
           - VRAM used by everything else (card used - weft's processes' use)
           - vram_headroom_mb

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from weft.resources.admission import Request, Reservation, Thresholds
    from weft.resources.capacity import Capacity
    from weft.resources.telemetry import HostReadings

__all__ = ["CardBudget", "card_budgets", "fits_card", "place_gpus"]


@dataclass(frozen=True)
class CardBudget:
    """One card's room for a new request, as seen by admission."""

    index: int
    free_mb: int  # VRAM budget left for a new request, headroom already taken
    weft_held: bool  # some weft reservation is on this card
    exclusive_held: bool  # a whole-card reservation is on this card
    too_busy: bool  # utilisation over the threshold


def card_budgets(
    capacity: Capacity,
    reservations: Iterable[Reservation],
    readings: HostReadings,
    thresholds: Thresholds,
    own_pids: frozenset[int],
) -> list[CardBudget]:
    """Budget of every capacity card that the snapshot still shows."""
    live = {d.index: d for d in readings.gpus}
    held = list(reservations)
    cards = []
    for slot in capacity.gpus:
        dev = live.get(slot.index)
        if dev is None:
            continue
        on_card = [r for r in held if slot.index in r.gpu_ids]
        reserved = sum(r.vram_mb for r in on_card)
        own_used = sum(mb for pid, mb in dev.processes if pid in own_pids)
        foreign = max(0, dev.memory_used_mb - own_used)
        charged = max(reserved, own_used) + foreign
        util = dev.utilization_pct
        cards.append(
            CardBudget(
                index=slot.index,
                free_mb=slot.memory_total_mb - charged - thresholds.vram_headroom_mb,
                weft_held=bool(on_card),
                exclusive_held=any(r.exclusive for r in on_card),
                too_busy=util is not None and util > thresholds.max_gpu_util_percent,
            )
        )
    return cards


def fits_card(request: Request, card: CardBudget) -> bool:
    """Shared requests need VRAM budget; a ``vram_mb == 0`` request needs the
    card free of any weft reservation (it is given the whole card)."""
    if card.too_busy or card.exclusive_held or card.free_mb < 0:
        return False
    if request.vram_mb == 0:
        return not card.weft_held
    return request.vram_mb <= card.free_mb


def place_gpus(request: Request, cards: Sequence[CardBudget]) -> tuple[int, ...] | None:
    """Most free budget first, then lowest index; None if too few cards fit."""
    fitting = sorted(
        (c for c in cards if fits_card(request, c)), key=lambda c: (-c.free_mb, c.index)
    )
    if len(fitting) < request.gpus:
        return None
    return tuple(c.index for c in fitting[: request.gpus])
