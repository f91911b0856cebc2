"""Remember simplebroker-pg's rewriting of each SQL statement instead of redoing it per call.

simplebroker writes its SQL for SQLite (``?`` placeholders); simplebroker-pg
rewrites every statement for psycopg (``%s``, literal ``%`` doubled) on every
execution, walking the text one character at a time in Python. A manager
sends the same few dozen statements over and over: under cProfile that walk
was 20 % of a PostgreSQL manager's time (1.9 of 9.5 s for 500 tasks; 6,458
rewrites, 3.4 million ``str.startswith`` calls). The rewrite depends on the
statement text alone, so its result can be kept: a bounded LRU cache keyed by
the text returns the identical string. Statements whose text varies (an
``IN (?, ?, ...)`` list of any length) only cycle through the cache.

Installed once per process when a PostgreSQL broker is opened; a
simplebroker-pg without the private ``_adapt_sql`` is left as it is.
"""

from __future__ import annotations

import functools
from typing import Any

CACHE_SIZE = 1024


def install() -> bool:
    """Wrap simplebroker-pg's ``_adapt_sql`` in an LRU cache; True if it is (now) wrapped."""
    try:
        from simplebroker_pg import runner
    except ImportError:
        return False
    adapt: Any = getattr(runner, "_adapt_sql", None)
    if adapt is None or not callable(adapt):
        return False
    if hasattr(adapt, "cache_info"):
        return True
    runner._adapt_sql = functools.lru_cache(maxsize=CACHE_SIZE)(adapt)
    return True
