"""The operator verbs behind WeftClient: restart, hold, release, edit, cancel.

WeftClient keeps the public methods (docs/python-api.md); their bodies live
here so the client module stays about connecting and submitting, and so the
verbs that act on tasks already queued or ended read together, with the one
checker of their bulk filters (``label``, ``request_id``, ``group``,
``status``, ``name``, ``all``). Imports are lazy: the CLI's start-up must not
pay for what a command does not use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from weft.client.client import WeftClient
    from weft.client.selection import Selector
    from weft.client.task import Task

FILTERS = frozenset({"label", "request_id", "group", "status", "name", "all"})


def restart(client: WeftClient, tid: str, *, env: Mapping[str, str] | None,
            cwd: str | None, command: Sequence[str] | None, hold: bool) -> Task:
    """Submit an ended task's recorded spec again as a new task (see WeftClient.restart)."""
    from weft.client.restart import restart_fields
    from weft.client.submit_checks import check_submit

    old = client.resolve_tid(tid)
    fields = restart_fields(client.broker, old, env=env, cwd=cwd, command=command)
    check_submit(fields, backend=client.context.backend)
    return client.submit_fields(fields, hold=hold, extra={"restarted_from": old})


def given_tids(client: WeftClient, tid: str | Sequence[str] | None,
               where: Mapping[str, Any]) -> list[str] | None:
    """The full TIDs of a list the caller gave (each once, in order), or None
    for one TID or none. Every TID is resolved before anything is done, so a
    wrong one refuses the whole call; a list does not mix with filters."""
    from weft.errors import UsageError

    if tid is None or isinstance(tid, (str, int)):
        return None
    if where:
        raise UsageError("give TIDs or filters, not both")
    tids = list(dict.fromkeys(client.resolve_tid(str(t)) for t in tid))
    if not tids:
        raise UsageError("the list of TIDs is empty")
    return tids


def hold_or_release(client: WeftClient, tid: str | Sequence[str] | None,
                    where: Mapping[str, Any], *, release: bool) -> list[dict[str, Any]]:
    """Hold (or release) one task, a list of them, or every task ``where`` selects;
    a release starts a manager when one was let go and none is live."""
    from weft.client import holding
    from weft.client.selection import hold_or_release as bulk

    listed = given_tids(client, tid, where)
    if tid is not None:
        act = holding.release if release else holding.hold
        outcome = [{"tid": full, "status": act(client.broker, full)}
                   for full in listed or [client.resolve_tid(str(tid))]]
    else:
        outcome = bulk(client, selector(where), release=release)
    if release and client.auto_start and any(o["status"] == "released" for o in outcome):
        client.workers.ensure_running()
    return outcome


def edit(client: WeftClient, tid: str, *, priority: int | None,
         env: Mapping[str, str] | None, group: str | None) -> dict[str, Any]:
    """Change a queued or held task's priority, env or group (see WeftClient.edit)."""
    from weft.client.editing import edit as edit_request
    from weft.errors import UsageError

    if priority is None and not env and group is None:
        raise UsageError("nothing to change: give priority, env or group")
    if priority is not None and not -1000 <= int(priority) <= 1000:
        raise UsageError(f"priority must be between -1000 and 1000, got {priority}")
    return edit_request(client.broker, client.resolve_tid(tid),
                        {"priority": priority, "env": dict(env or {}), "group": group})


def cancel(client: WeftClient, tid: str | Sequence[str] | None, *, kill: bool, timeout: float,
           where: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Stop or kill one task, a list of them, or every task ``where`` selects
    (see WeftClient.cancel)."""
    from weft.client.selection import cancel as bulk
    from weft.client.selection import cancel_tids

    listed = given_tids(client, tid, where)
    if listed is not None:
        return cancel_tids(client, listed, kill=kill, timeout=timeout)
    if tid is not None:
        reply = client.task(str(tid)).control("KILL" if kill else "STOP", timeout=timeout)
        return [{"tid": reply.get("tid"), "status": reply.get("status"),
                 "reply": reply.get("reply") or reply.get("error")}]
    return bulk(client, selector(where), kill=kill, timeout=timeout)


def selector(where: Mapping[str, Any]) -> Selector:
    """The bulk filters of the verbs above, checked: UsageError names unknown ones."""
    from weft.client.selection import Selector, parse_labels
    from weft.errors import UsageError

    unknown = set(where) - FILTERS
    if unknown:
        raise UsageError(f"unknown filter(s): {', '.join(sorted(unknown))}")
    return Selector(labels=parse_labels(where.get("label")), request_id=where.get("request_id"),
                    group=where.get("group"), status=where.get("status"),
                    name=where.get("name"), all=bool(where.get("all")))
