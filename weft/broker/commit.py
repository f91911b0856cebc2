"""One broker transaction for everything a process step wrote: writes, fenced settles, deletes.

A busy manager step produces events, results and settles for several tasks.
Committed one message at a time they cost a transaction each (and, in
simplebroker, a second commit per id drawn before its transaction): five
transactions per task, over half a manager's CPU (docs/performance.md).
:func:`run` commits a whole step in ONE transaction instead.

**Ids are drawn inside the transaction**, after it has taken the write lock
(``BEGIN IMMEDIATE`` on SQLite, the ``meta`` row lock that every writer takes
first on PostgreSQL). Writers are serialised there, so ids rise in commit
order: a reader that follows a queue by id (the manager's dependency cursor,
``weft logs --follow``) can never see an id and later find a lower one
committed behind it. The first id comes from simplebroker's generator (one
compare-and-advance of ``meta.last_ts``); the rest are the ids that follow it,
and ``last_ts`` is advanced past the last one in the same transaction. A fence
may bring its own ids (``Fence.ids``, drawn earlier) when its writes must name
each other, as a job's child request and the record of it do.

**A fence** (:class:`Fence`) acts on one exact claim: its writes and deletes
happen only if its statement on the claim hits the row. A missed fence
changes nothing (its statement matched no row), so it needs no savepoint:
the other units of the transaction commit as they would have alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Fence:
    """Remove (or move, or with ``keep`` only check and lock) claim ``message_id``
    in ``queue``; only if it is there, write ``writes`` and delete ``deletes``."""

    queue: str
    message_id: int
    writes: Sequence[tuple[str, str]] = ()
    deletes: Sequence[tuple[str, int]] = ()
    move_to: str | None = None
    body: str | None = None
    keep: bool = False
    ids: Sequence[int] | None = None  # given ids for ``writes`` (parts naming each other)


@dataclass(frozen=True)
class Writes:
    """Messages (queue, body) written unconditionally, in order."""

    records: Sequence[tuple[str, str]] = field(default_factory=tuple)


@dataclass(frozen=True)
class Deletes:
    """Pending messages removed by id (missing ones are not an error)."""

    queue: str
    ids: Sequence[int] = ()


Unit = Fence | Writes | Deletes
Row = tuple[str, str, int]  # (queue, body, id)

_INSERT = "INSERT INTO messages (queue, body, ts) VALUES (?, ?, ?)"


def run(core: Any, backend: str, units: Sequence[Unit]) -> tuple[list[bool], list[int]]:
    """Commit ``units`` in one transaction on simplebroker ``core``.

    Returns whether each fence held (one bool per :class:`Fence`, in order)
    and the ids of every write that was committed, in order (a missed
    fence's writes have none).
    """
    wanted = sum(len(u.records) if isinstance(u, Writes) else
                 len(u.writes) if isinstance(u, Fence) and u.ids is None else 0 for u in units)
    held: list[bool] = []
    written: list[int] = []
    touched: set[str] = set()
    with core.sidecar(transaction=True) as tx:
        ids = iter(_draw_ids(core, wanted))
        for unit in units:
            if isinstance(unit, Writes):
                for queue, body in unit.records:
                    _insert(tx, queue, body, ids, written, touched)
            elif isinstance(unit, Deletes):
                _delete(tx, unit.queue, unit.ids)
            else:
                hit = _fence(tx, backend, unit)
                held.append(hit)
                given = iter(unit.ids) if unit.ids is not None else ids
                if not hit:
                    if unit.ids is None:
                        for _ in unit.writes:
                            next(ids)  # a gap in the ids: harmless
                    continue
                for queue, body in unit.writes:
                    _insert(tx, queue, body, given, written, touched)
                for queue, mid in unit.deletes:
                    tx.run("DELETE FROM messages WHERE queue = ? AND ts = ?", (queue, mid))
                if unit.move_to is not None:
                    touched.add(unit.move_to)
        if backend == "postgres" and touched:
            notify(tx, touched)
    return held, written


def insert_drawn(core: Any, backend: str, count: int,
                 build: Callable[[list[int]], Sequence[Row]]) -> list[Row]:
    """Draw ``count`` ids inside one transaction, let ``build`` make rows of them, insert them.

    For messages whose bodies name their own ids (bulk submission: a spawn
    request and the ``task_submitted`` record naming its TID), which
    :func:`run` cannot give because it draws ids only as it inserts.
    ``build`` gets the ids in rising order and returns (queue, body, id)
    rows using only those ids. Returns the rows as committed; a failure
    anywhere (in ``build`` too) rolls everything back.
    """
    if count <= 0:
        return []
    with core.sidecar(transaction=True) as tx:
        ids = _draw_ids(core, count)
        rows = list(build(ids))
        drawn = set(ids)
        for queue, body, mid in rows:
            if mid not in drawn:
                raise ValueError(f"row id {mid} was not drawn for this batch")
            tx.run(_INSERT, (queue, body, mid))
        if backend == "postgres" and rows:
            notify(tx, {queue for queue, _body, _mid in rows})
    return rows


def _draw_ids(core: Any, count: int) -> list[int]:
    """``count`` ids above every committed one, drawn under the transaction's write lock."""
    if count == 0:
        return []
    first = int(core.generate_timestamp())  # joins the open transaction: no commit of its own
    if count > 1:
        core.advance_last_timestamp(first + count - 1)
    return list(range(first, first + count))


def _insert(tx: Any, queue: str, body: str, ids: Iterator[int], written: list[int],
            touched: set[str]) -> None:
    mid = next(ids)
    tx.run(_INSERT, (queue, body, mid))
    written.append(mid)
    touched.add(queue)


def _delete(tx: Any, queue: str, ids: Sequence[int]) -> None:
    for start in range(0, len(ids), 500):
        page = list(ids[start:start + 500])
        marks = ",".join("?" * len(page))
        tx.run(f"DELETE FROM messages WHERE queue = ? AND ts IN ({marks})", (queue, *page))


def _fence(tx: Any, backend: str, unit: Fence) -> bool:
    queue, message_id = unit.queue, unit.message_id
    if unit.keep:
        lock = " FOR UPDATE" if backend == "postgres" else ""
        hit = tx.run("SELECT ts FROM messages WHERE queue = ? AND ts = ? AND NOT claimed" + lock,
                     (queue, message_id), fetch=True)
    elif unit.move_to is None:
        hit = tx.run("DELETE FROM messages WHERE queue = ? AND ts = ? AND NOT claimed "
                     "RETURNING ts", (queue, message_id), fetch=True)
    elif unit.body is None:
        hit = tx.run("UPDATE messages SET queue = ? WHERE queue = ? AND ts = ? "
                     "AND NOT claimed RETURNING ts", (unit.move_to, queue, message_id),
                     fetch=True)
    else:
        hit = tx.run("UPDATE messages SET queue = ?, body = ? WHERE queue = ? "
                     "AND ts = ? AND NOT claimed RETURNING ts",
                     (unit.move_to, unit.body, queue, message_id), fetch=True)
    return bool(list(hit))


def notify(tx: Any, queues: set[str]) -> None:
    """Tell Postgres listeners (simplebroker's waiters, weft's ChangeFeed) what changed.

    simplebroker-pg's own writes send one NOTIFY per queue on its schema's
    channel; raw SQL inside a sidecar transaction must do the same itself.
    """
    for queue in sorted(queues):
        tx.run("SELECT pg_notify('simplebroker_' || substr(md5(current_schema()), 1, 24), ?)",
               (queue,), fetch=True)

