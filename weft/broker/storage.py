"""How much room a project's broker takes, for ``weft_broker_database_bytes``.

SQLite: the broker file and its write-ahead log. PostgreSQL: the tables of
the project's schema with their indexes and TOAST (``pg_total_relation_size``),
which include the blob store's chunks. One query, run only when
``weft metrics`` asks; nothing on a manager's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from weft.broker.broker import Broker

_PG_SIZE = ("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')")


def database_bytes(broker: Broker) -> int:
    """Bytes the broker's database holds (see the module docstring)."""
    if broker.backend == "sqlite":
        db = Path(broker.description)
        return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())

    def run() -> int:
        with broker._core.sidecar() as tx:
            rows = list(tx.run(_PG_SIZE, (), fetch=True))
        return int(rows[0][0] or 0) if rows else 0

    return broker._call(run, "read")
