"""Could any manager of the project ever run a request? The never-fits judgement.

A manager that cannot fit a request by its own totals asks this module what
to do with it, given every manager the registry has seen within the history
window (``WEFT_MANAGER_HISTORY_WINDOW``, 24 h by default), live or not:

* ``live`` -- a live manager could run it (or its capacity is unreadable):
  leave it on the queue for that manager;
* ``wait`` -- only managers that are absent now (stopped, dead, rebooting)
  could run it: it waits as ``deferred``, with a reason naming them, because
  a reboot of the GPU host must not dead-letter GPU work;
* ``reject`` -- no manager seen within the window could ever run it: refuse
  it, naming the best capacity in the project (not the judging manager's own,
  which says nothing about what the project could do).

Pure: the caller reads the registry and passes what it found, with ``now``
already applied (``live`` says whether each manager is up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from weft.resources.admission import Request, Thresholds, rejection_reason
from weft.resources.capacity import Capacity

__all__ = ["Seen", "Verdict", "judge", "window_text"]


@dataclass(frozen=True)
class Seen:
    """One manager from the registry history; ``capacity`` None when unreadable."""

    tid: str
    host: str
    live: bool
    capacity: Capacity | None
    thresholds: Thresholds = Thresholds()


@dataclass(frozen=True)
class Verdict:
    kind: Literal["live", "wait", "reject"]
    reason: str = ""


def window_text(seconds: float) -> str:
    """``86400`` -> ``24h``; ``90`` -> ``90s``: for reasons a person reads."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def judge(request: Request, seen: Sequence[Seen], window: float) -> Verdict:
    """What to do with a request its judge cannot fit (see the module docstring)."""
    could = [s for s in seen if s.capacity is None
             or rejection_reason(request, s.capacity, s.thresholds) is None]
    if any(s.live for s in could):
        return Verdict("live")
    span = window_text(window)
    if could:
        names = ", ".join(sorted({_name(s) for s in could}))
        return Verdict("wait", f"no live manager can run it ({_needs(request)}); waiting for "
                               f"a manager seen in the last {span} that can: {names}")
    known = [s for s in seen if s.capacity is not None]
    return Verdict("reject", _best_capacity(request, known, span))


def _name(s: Seen) -> str:
    if s.capacity is None:
        return f"{s.host} (capacity unknown)"
    return f"{s.host} ({_describe(s.capacity)})"


def _describe(capacity: Capacity) -> str:
    gpus = len(capacity.gpus)
    text = f"{capacity.cpus:g} CPUs, {capacity.memory_mb} MB"
    if gpus:
        text += f", {gpus} GPU{'s' if gpus != 1 else ''} of up to " \
                f"{max(g.memory_total_mb for g in capacity.gpus)} MB"
    return text


def _needs(request: Request) -> str:
    parts = []
    if request.cpus:
        parts.append(f"{request.cpus:g} CPUs")
    if request.memory_mb:
        parts.append(f"{request.memory_mb} MB memory")
    if request.gpus:
        parts.append(f"{request.gpus} GPU{'s' if request.gpus != 1 else ''}"
                     + (f" with {request.vram_mb} MB VRAM" if request.vram_mb else ""))
    return "needs " + (", ".join(parts) or "nothing")


def _best_capacity(request: Request, known: Sequence[Seen], span: str) -> str:
    """The first resource no manager has enough of, and the most any manager has."""
    who = f"the most any manager seen in the last {span} has"
    if not known:
        return f"{_needs(request)}; no manager seen in the last {span} published its capacity"
    top = max(known, key=lambda s: s.capacity.cpus if s.capacity else 0)
    if top.capacity and request.cpus > top.capacity.cpus + 1e-9:
        return f"needs {request.cpus:g} CPUs; {who} is {top.capacity.cpus:g} ({top.host})"
    top = max(known, key=lambda s: s.capacity.memory_mb if s.capacity else 0)
    if top.capacity and request.memory_mb > top.capacity.memory_mb:
        return (f"needs {request.memory_mb} MB memory; {who} is "
                f"{top.capacity.memory_mb} MB ({top.host})")
    top = max(known, key=lambda s: len(s.capacity.gpus) if s.capacity else 0)
    count = len(top.capacity.gpus) if top.capacity else 0
    plural = "s" if request.gpus != 1 else ""
    if request.gpus > count:
        return f"needs {request.gpus} GPU{plural}; {who} is {count} ({top.host})"
    if request.gpus and request.vram_mb:
        def large(s: Seen) -> int:
            need = request.vram_mb + s.thresholds.vram_headroom_mb
            return sum(1 for g in (s.capacity.gpus if s.capacity else ()) if g.memory_total_mb >= need)

        top = max(known, key=large)
        biggest = max((g.memory_total_mb for s in known for g in (s.capacity.gpus if s.capacity
                                                                   else ())), default=0)
        if large(top) < request.gpus:
            return (f"needs {request.gpus} GPU{plural} with {request.vram_mb} MB VRAM "
                    f"(+{top.thresholds.vram_headroom_mb} MB headroom); {who} is {large(top)} "
                    f"such card{'s' if large(top) != 1 else ''} ({top.host}; largest card in "
                    f"the project {biggest} MB)")
    return (f"{_needs(request)}; no single manager seen in the last {span} has all of it "
            f"({len(known)} checked)")
