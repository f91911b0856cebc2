"""Opening a weft broker on PostgreSQL (simplebroker-pg), and noticing change there.

A Postgres project is one schema in an existing database, shared by every
host that points at it. Three things here, all specific to that backend:

- :func:`target` turns settings into a simplebroker target after checking
  what simplebroker would otherwise report slowly or with a traceback: the
  plugin is installed, the DSN parses, the schema name is legal, and the
  server answers (simplebroker's pool retries a dead server for 30 s).
- :class:`ChangeFeed` stands in for SQLite's ``PRAGMA data_version``.
  simplebroker-pg sends a NOTIFY on its schema's channel for every write and
  move; one LISTEN connection counts them. Deletes and claims send nothing,
  so the count also ticks every :data:`TICK` seconds: a waiter never misses
  a change by more than that.
- :func:`drop_schema` removes a project's schema (tests, ``weft`` users
  retiring a project).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from weft.errors import BrokerError, BrokerUnavailable, UsageError

CONNECT_TIMEOUT = 5
TICK = 0.5
SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INSTALL_HINT = "the postgres backend needs simplebroker-pg: pip install 'weft[postgres]'"


def _psycopg() -> Any:
    # The pool logs a warning per reconnect attempt; weft reports an outage
    # once itself (weft.runtime.outage, weft.client.polling).
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    try:
        import psycopg
        import simplebroker_pg  # noqa: F401 - simplebroker finds it by entry point
    except ImportError:
        raise BrokerError(INSTALL_HINT) from None
    return psycopg


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    return line.removeprefix("connection failed: ")


def check_schema(schema: str) -> str:
    if schema == "public" or not SCHEMA_RE.match(schema):
        raise UsageError(
            f"bad Postgres schema {schema!r}: use letters, digits and _ (not 'public')")
    return schema


def connect(dsn: str) -> Any:
    """An autocommit connection, or one BrokerError line saying why not."""
    psycopg = _psycopg()
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.ProgrammingError as exc:
        raise UsageError(f"bad Postgres DSN: {_first_line(exc)}") from None
    except psycopg.Error as exc:
        raise BrokerUnavailable(f"cannot reach Postgres: {_first_line(exc)}") from None


def target(dsn: str | None, schema: str) -> tuple[Any, Any]:
    """(simplebroker target, probe connection) for ``dsn``/``schema``.

    The probe connection is returned open so the caller can reuse it as its
    :class:`ChangeFeed` instead of paying for a second connection.
    """
    if not dsn:
        raise UsageError("the postgres backend needs a DSN: set WEFT_BROKER_TARGET "
                         "or run 'weft init --backend postgres --dsn ...'")
    check_schema(schema)
    conn = connect(dsn)
    from simplebroker import BrokerTarget

    from weft.broker import pg_sql_cache

    pg_sql_cache.install()  # the same statements, rewritten once (weft/broker/pg_sql_cache.py)

    return BrokerTarget(backend_name="postgres", target=dsn,
                        backend_options={"schema": schema}), conn


def redact(dsn: str | None) -> str:
    """The DSN with any password masked, for messages and descriptions."""
    if not dsn:
        return "(no DSN)"
    text = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", text)


def channel(schema: str) -> str:
    """The NOTIFY channel simplebroker-pg uses for ``schema``."""
    import hashlib  # here, not at the top: OpenSSL's start-up is wasted on SQLite projects

    return "simplebroker_" + hashlib.md5(schema.encode()).hexdigest()[:24]


class ChangeFeed:
    """A counter that moves whenever the schema may have changed."""

    def __init__(self, dsn: str, schema: str, conn: Any | None = None) -> None:
        self.dsn = dsn
        self.schema = schema
        self.count = 0
        self._conn = conn
        self._listening = False
        self._last_tick = time.monotonic()
        # A manager dispatches on writes and moves only, which all notify: it
        # turns the tick off (weft.runtime.wakeup) and so takes no timed looks.
        self.ticks = True

    def version(self) -> int:
        now = time.monotonic()
        if self.ticks and now - self._last_tick >= TICK:
            self._last_tick = now
            self.count += 1
        try:
            conn: Any = self._conn if self._listening else self._listen()
            for _ in conn.notifies(timeout=0):
                self.count += 1
        except BrokerError:
            self.count += 1  # server away: every look is a change until it returns
        except Exception:  # noqa: BLE001 - the connection broke: reopen on the next look
            self._drop()
            self.count += 1
        return self.count

    def fileno(self) -> int | None:
        """The LISTEN connection's socket, readable when a notification arrives
        (a waiter selects on it: weft.runtime.wakeup); None while the server is away."""
        try:
            conn: Any = self._conn if self._listening else self._listen()
            return int(conn.fileno())
        except Exception:  # noqa: BLE001 - away or broken: the waiter looks instead
            self._drop()
            return None

    def take(self) -> bool:
        """Count the notifications that have arrived; True if any (or the link broke)."""
        before = self.count
        conn: Any = self._conn
        if self._listening and conn is not None:
            try:
                for _ in conn.notifies(timeout=0):
                    self.count += 1
            except Exception:  # noqa: BLE001 - reopen on the next look
                self._drop()
                self.count += 1
        return self.count != before

    def _listen(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.dsn)
        self._conn.execute(f'LISTEN "{channel(self.schema)}"')
        self._listening = True
        self.count += 1  # what was written before we listened was not announced: look
        return self._conn

    def _drop(self) -> None:
        conn, self._conn, self._listening = self._conn, None, False
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def close(self) -> None:
        self._drop()


def drop_schema(dsn: str, schema: str) -> None:
    """Remove a weft schema and everything in it."""
    check_schema(schema)
    conn = connect(dsn)
    try:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        conn.close()
