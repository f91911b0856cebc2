"""Many messages whose bodies name their own ids, in ONE transaction.

Bulk submission (``weft submit -``) queues thousands of tasks, each a spawn
request plus a ``task_submitted`` record that names the request's id (its
TID). Drawn one by one, every id is a commit of its own before its insert;
10,000 tasks cost 30,000 commits. Here the ids are drawn *inside* the
insert's transaction, after it has taken the write lock: simplebroker's
generator advances ``meta.last_ts`` with a statement that joins the open
transaction, and no other writer can commit in between, so the ids rise in
commit order (a reader that follows a queue by id never finds a lower id
committed behind one it has seen) and nothing is visible until all of it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Row = tuple[str, str, int]  # (queue, body, id)
_INSERT = "INSERT INTO messages (queue, body, ts) VALUES (?, ?, ?)"
_NOTIFY = "SELECT pg_notify('simplebroker_' || substr(md5(current_schema()), 1, 24), ?)"


def insert_drawn(core: Any, backend: str, count: int,
                 build: Callable[[list[int]], Sequence[Row]]) -> list[Row]:
    """Draw ``count`` fresh ids, let ``build`` turn them into rows, insert them all.

    ``build`` gets the ids in rising order and returns (queue, body, id)
    rows using only those ids. Returns the rows as committed. A failure
    anywhere (in ``build`` too) rolls everything back.
    """
    if count <= 0:
        return []
    with core.sidecar(transaction=True) as tx:
        first = int(core.generate_timestamp())  # joins the open transaction: no commit of its own
        if count > 1:
            core.advance_last_timestamp(first + count - 1)
        ids = list(range(first, first + count))
        rows = list(build(ids))
        drawn = set(ids)
        for queue, body, mid in rows:
            if mid not in drawn:
                raise ValueError(f"row id {mid} was not drawn for this batch")
            tx.run(_INSERT, (queue, body, mid))
        if backend == "postgres":
            for queue in sorted({queue for queue, _body, _mid in rows}):
                tx.run(_NOTIFY, (queue,), fetch=True)  # wake LISTENers, as simplebroker's writes do
    return rows
