"""Bulk control: pick tasks by label, request id, group, name or state, then
stop, kill, hold or release every one.

A bulk stop must leave no matched task free to start once it returns.
Waiting tasks (queued, deferred, held) are taken off their queue first,
each by one atomic claim of its request, so a manager can no longer claim
them; a request that a manager claimed in the meantime, and every matched
task already running, is then sent STOP (or KILL) and answered before the
call returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from weft.errors import UsageError, WaitTimeout
from weft.models.states import TERMINAL

if TYPE_CHECKING:
    from weft.client.client import WeftClient

WAITING = frozenset({"queued", "deferred", "held"})
ENDED = frozenset(str(s) for s in TERMINAL)


@dataclass(frozen=True)
class Selector:
    """Which tasks a bulk command acts on; every given filter must match."""

    labels: Mapping[str, str] = field(default_factory=dict)
    request_id: str | None = None
    group: str | None = None
    status: str | None = None
    name: str | None = None
    all: bool = False

    @property
    def empty(self) -> bool:
        return not (self.labels or self.request_id or self.group or self.status or self.name)

    def matches(self, row: Mapping[str, Any]) -> bool:
        labels = row.get("labels") or {}
        return (all(labels.get(k) == v for k, v in self.labels.items())
                and (self.request_id is None or row.get("request_id") == self.request_id)
                and (self.group is None or (row.get("group") or "default") == self.group)
                and (self.status is None or row.get("status") == self.status)
                and (self.name is None or row.get("name") == self.name))


def parse_labels(label: Mapping[str, str] | str | list[str] | tuple[str, ...] | None
                 ) -> dict[str, str]:
    """``{"k": "v"}``, ``"k=v"`` or a list of ``"k=v"`` as a dict."""
    if label is None:
        return {}
    if isinstance(label, Mapping):
        return {str(k): str(v) for k, v in label.items()}
    out: dict[str, str] = {}
    for pair in [label] if isinstance(label, str) else label:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"a label filter is KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def select(client: WeftClient, selector: Selector) -> list[dict[str, Any]]:
    """The rows of the tasks that match (managers excluded); refuses an empty selector."""
    if selector.empty and not selector.all:
        raise UsageError("say which tasks: a TID, or --label/--request-id/--group/--status/"
                         "--name, or --all")
    rows = client.tasks()
    return [r for r in rows if r.get("status") not in ENDED and selector.matches(r)]


def cancel(client: WeftClient, selector: Selector, *, kill: bool = False,
           timeout: float = 10.0) -> list[dict[str, Any]]:
    """Stop (or kill) every matching task; one outcome dict per task, by TID."""
    rows = sorted(select(client, selector), key=lambda r: r["tid"])
    return cancel_tids(client, [r["tid"] for r in rows], kill=kill, timeout=timeout,
                       waiting={r["tid"] for r in rows if r["status"] in WAITING})


def cancel_tids(client: WeftClient, tids: list[str], *, kill: bool = False,
                timeout: float = 10.0, waiting: set[str] | None = None) -> list[dict[str, Any]]:
    """Stop (or kill) each of ``tids``; one outcome dict per task, in their order.

    First every one still waiting (all of them, or only ``waiting`` when the
    caller knows) is taken off its queue; only then are the others signalled
    and their answers awaited, so none of the tasks can start meanwhile.
    """
    command = "KILL" if kill else "STOP"
    from weft.jobs.stopping import is_open

    outcomes: dict[str, dict[str, Any]] = {}
    for tid in tids:
        # A job (even one waiting to be resumed) is stopped below, with its children.
        if (waiting is None or tid in waiting) and not is_open(client.broker, tid) \
                and client.task(tid)._cancel_if_queued(command):
            outcomes[tid] = {"tid": tid, "status": "cancelled",
                             "reply": "cancelled before it started"}
    for tid in tids:
        if tid in outcomes:
            continue  # running, ended, a job, or claimed while we looked
        try:
            reply = client.task(tid).control(command, timeout=timeout)
            outcomes[tid] = {"tid": tid, "status": reply.get("status"),
                             "reply": reply.get("reply") or reply.get("error")}
        except WaitTimeout as exc:
            outcomes[tid] = {"tid": tid, "status": "unknown", "reply": str(exc)}
    return [outcomes[tid] for tid in tids]


def hold_or_release(client: WeftClient, selector: Selector, *, release: bool
                    ) -> list[dict[str, Any]]:
    """Hold every matching queued task, or release every matching held one."""
    from weft.client import holding

    want = "held" if release else "queued"
    outcomes = []
    for row in select(client, selector):
        if row["status"] not in (want, "deferred") or (release and row["status"] != "held"):
            continue
        try:
            did = (holding.release if release else holding.hold)(client.broker, row["tid"])
        except UsageError as exc:  # a manager claimed it while we looked
            did = str(exc)
        outcomes.append({"tid": row["tid"], "status": did})
    return outcomes
