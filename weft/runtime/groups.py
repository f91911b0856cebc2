"""Task groups: a parallel limit and a pause shared by every manager.

A group is named by a task's ``group`` (tasks without one are in
``default``). Its settings live in the broker, in ``weft.groups``: one
record per change, ``{"v", "group", "parallel", "paused", "ts"}``, the
newest per group wins (older ones are pruned by the writer). Nothing is
kept in a manager, so every manager of the project, on any host, obeys the
same limit and the same pause.

Admission asks :func:`gate` before planning: requests of a paused group
wait (``group paused``), and at most ``parallel`` minus the group's running
tasks go on to be planned; the rest wait as ordinary queueing (a
``concurrency:`` reason, which is not logged). A group's running tasks are
counted from the claims of every live manager (``T{mgr}.reserved`` holds a
claimed request until its task has settled), so the count spans managers.
Two managers planning at the same instant could each give a group its last
free slot, so a manager confirms after its claim (:meth:`GroupGate.confirm`):
it counts again, its own new claim included, and moves the claim back (one
atomic move) when the group is now over its limit or paused. Whoever counts
after the other's claim sees both and backs off, so the limit holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from weft.broker import Broker
from weft.codec import loads_object
from weft.names import GROUPS, task_queue

DEFAULT = "default"


@dataclass(frozen=True)
class Group:
    name: str
    parallel: int | None = None  # None: no limit of its own
    paused: bool = False
    message_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.name, "parallel": self.parallel, "paused": self.paused}


def group_of(spec: Any) -> str:
    """The group of a TaskSpec or a spec dict."""
    name = spec.get("group") if isinstance(spec, dict) else getattr(spec, "group", None)
    return name or DEFAULT


def read_groups(broker: Broker) -> dict[str, Group]:
    """The newest record of every group that has one."""
    newest: dict[str, Group] = {}
    for body, mid in broker.peek_all(GROUPS):
        rec = loads_object(body)
        if rec is None or not isinstance(rec.get("group"), str):
            continue
        parallel = rec.get("parallel")
        newest[rec["group"]] = Group(rec["group"], parallel if isinstance(parallel, int) else None,
                                     bool(rec.get("paused")), mid)
    return newest


def write_group(broker: Broker, group: Group) -> Group:
    """Record ``group`` as its newest state and prune its older records."""
    old = [mid for body, mid in broker.peek_all(GROUPS)
           if (loads_object(body) or {}).get("group") == group.name]
    mid = broker.write(GROUPS, json.dumps({"v": 1, **group.to_dict(), "ts": time.time()}))
    broker.delete(GROUPS, old)
    return Group(group.name, group.parallel, group.paused, mid)


def running_by_group(broker: Broker, now: float | None = None, *,
                     skip: str | None = None) -> dict[str, int]:
    """Tasks claimed and not yet settled, per group, over every live manager
    (but ``skip``: a manager counts its own tasks from memory, because it
    deletes a finished task's claim only after its next dispatch step)."""
    from weft.runtime.registry import liveness, read_all

    now = time.time() if now is None else now
    counts: dict[str, int] = {}
    for entry in read_all(broker).values():
        if entry.tid == skip or liveness(entry.record, now) not in ("active", "orphaned"):
            continue
        for body, _mid in broker.peek_all(task_queue(entry.tid, "reserved")):
            request = loads_object(body) or {}
            name = group_of(request.get("taskspec") or {})
            counts[name] = counts.get(name, 0) + 1
    return counts


def gate(broker: Broker, cands: Sequence[Any], *, manager_tid: str | None = None,
         own: Mapping[str, int] | None = None, records: Mapping[str, Group] | None = None,
         ) -> tuple[list[Any], list[tuple[Any, str]]]:
    """Split candidates (best first) into those admission may plan and those
    their group holds back, each with its reason. ``own`` is the calling
    manager's running tasks per group (its claims are not read); ``records``
    the groups, when the caller has read them."""
    groups = dict(records) if records is not None else (read_groups(broker) if cands else {})
    if not groups:
        return list(cands), []
    running: dict[str, int] | None = None
    allowed, held = [], []
    taken: dict[str, int] = {}
    for cand in cands:
        name = group_of(cand.spec)
        group = groups.get(name)
        if group is None:
            allowed.append(cand)
        elif group.paused:
            held.append((cand, f"group paused: {name}"))
        elif group.parallel is None:
            allowed.append(cand)
        else:
            if running is None:
                running = running_by_group(broker, skip=manager_tid)
                for key, n in (own or {}).items():
                    running[key] = running.get(key, 0) + n
            used = running.get(name, 0) + taken.get(name, 0)
            if used >= group.parallel:
                held.append((cand, f"concurrency: group {name} full ({group.parallel})"))
            else:
                taken[name] = taken.get(name, 0) + 1
                allowed.append(cand)
    return allowed, held


class GroupGate:
    """One manager's side of the groups: :func:`gate` before planning,
    :meth:`confirm` after each claim, and its own running tasks per group
    (counted from memory: it deletes a finished task's claim only after the
    dispatch step, and its own commits do not wake it)."""

    def __init__(self, broker: Broker, manager_tid: str | None) -> None:
        self.broker = broker
        self.manager_tid = manager_tid
        self.running: dict[str, str] = {}  # tid -> group, tasks this manager runs
        self.limited: set[str] = set()  # groups with a record at the last split

    def _own(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name in self.running.values():
            counts[name] = counts.get(name, 0) + 1
        return counts

    def split(self, cands: Sequence[Any]) -> tuple[list[Any], list[tuple[Any, str]]]:
        records = read_groups(self.broker) if cands else {}
        self.limited = {name for name, g in records.items() if g.paused or g.parallel}
        return gate(self.broker, cands, manager_tid=self.manager_tid, own=self._own(),
                    records=records)

    def confirm(self, cand: Any, claimed_in: str, requests_queue: str) -> bool:
        """After claiming ``cand`` into ``claimed_in``: keep it (True), or put it
        back on ``requests_queue`` (False) when its group is paused or full."""
        name = group_of(cand.spec)
        if name not in self.limited:
            return True
        group = read_groups(self.broker).get(name)
        if group is None or (not group.paused and group.parallel is None):
            return True
        over = group.paused
        if not over and group.parallel is not None:
            others = running_by_group(self.broker, skip=self.manager_tid).get(name, 0)
            over = others + self._own().get(name, 0) + 1 > group.parallel
        if over:
            self.broker.move_one(claimed_in, requests_queue, message_id=cand.message_id)
        return not over

    def started(self, tid: str, spec: Any) -> None:
        self.running[tid] = group_of(spec)

    def ended(self, tid: str) -> None:
        self.running.pop(tid, None)
