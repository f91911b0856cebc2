"""simplebroker-pg's SQL rewriting, cached: the same text out, each statement rewritten once."""

from __future__ import annotations

import pytest

from weft.broker import pg_sql_cache

runner = pytest.importorskip("simplebroker_pg.runner")

STATEMENTS = [
    "SELECT body, ts FROM messages WHERE queue = ? AND ts > ? ORDER BY ts LIMIT ?",
    "SELECT '?' AS literal, x FROM t WHERE a LIKE '50%' AND b = ? -- trailing ?\n",
    "SELECT $tag$ ? $tag$, ?? FROM t WHERE c = ? /* ? */",
]


def test_the_cached_rewrite_returns_what_the_original_does() -> None:
    original = runner._adapt_sql
    if hasattr(original, "cache_info"):  # installed by an earlier test in this process
        original = original.__wrapped__
    try:
        runner._adapt_sql = original
        expected = [original(sql) for sql in STATEMENTS]
        assert pg_sql_cache.install() is True
        assert pg_sql_cache.install() is True  # a second install keeps the one cache
        cached = runner._adapt_sql
        assert cached.__wrapped__ is original
        assert [cached(sql) for sql in STATEMENTS * 3] == expected * 3
        assert cached.cache_info().misses == len(STATEMENTS)
        assert "%s" in expected[0] and "?" not in expected[0]  # the rewrite did rewrite
    finally:
        runner._adapt_sql = original
