"""Broker metrics (issue 14): what a manager's broker operations cost, how often
SQLite said "locked" and the operation was tried again, and refusals for size,
from the process counters (weft/broker/opstats.py) to the exposition."""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from weft.broker.broker import Broker, MessageTooLarge
from weft.broker.opstats import BOUNDS, STATS
from weft.metrics.registry import manager_families
from weft.settings import Settings


def _samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _render(records):
    class Fixed:
        def collect(self):
            return manager_families(records, {})

    reg = CollectorRegistry()
    reg.register(Fixed())
    return generate_latest(reg).decode()


@pytest.fixture
def broker(tmp_path):
    (tmp_path / ".weft").mkdir()
    b = Broker.open(tmp_path, Settings(busy_timeout_ms=20))
    STATS.reset()
    try:
        yield b
    finally:
        b.close()
        STATS.reset()


def test_operations_are_timed_by_kind(broker):
    mid = broker.write("q", "a")
    broker.peek_one("q")
    broker.move_one("q", "r", message_id=mid)
    assert broker.settle_claim("r", mid)
    snap = STATS.snapshot()
    assert {op: sum(d["n"]) for op, d in snap["ops"].items()} == {
        "write": 1, "read": 1, "move": 1, "settle": 1}
    assert all(len(d["n"]) == len(BOUNDS) + 1 and 0 < d["s"] < 5 for d in snap["ops"].values())


def test_a_locked_database_counts_retries_and_the_time_they_took(broker, tmp_path):
    other = sqlite3.connect(tmp_path / ".weft" / "broker.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # what another process's long write looks like
    wrote: list[int] = []
    writer = threading.Thread(target=lambda: wrote.append(broker.write("q", "x")))
    try:
        writer.start()
        writer.join(0.3)  # the writer keeps retrying while the lock is held
        assert writer.is_alive()
    finally:
        other.execute("COMMIT")
        other.close()
        writer.join(10)
    assert wrote and STATS.lock_retries >= 1 and STATS.lock_wait_seconds >= 0.2
    got = _samples(_render([{"tid": "M", "broker": STATS.snapshot()}]))
    assert got[("weft_broker_lock_retries_total", (("manager", "M"),))] == STATS.lock_retries
    assert got[("weft_broker_lock_wait_seconds_total", (("manager", "M"),))] >= 0.2
    slow = ("weft_broker_operation_seconds_bucket", (("le", "0.1"), ("manager", "M"),
                                                     ("op", "write")))
    assert got[slow] == 0  # the write waited 0.3 s: above the 0.1 s bound
    assert got[("weft_broker_operation_seconds_count", (("manager", "M"), ("op", "write")))] == 1


def test_oversize_messages_are_refused_and_counted(broker):
    with pytest.raises(MessageTooLarge):
        broker.settle_claim("q", 1, writes=[("q", "x" * (broker.max_message_size + 1))])
    assert STATS.oversize == 1
    got = _samples(_render([{"tid": "M", "broker": STATS.snapshot()}]))
    assert got[("weft_broker_oversize_messages_total", (("manager", "M"),))] == 1


def test_counts_restart_in_a_forked_child(broker):
    import os

    broker.write("q", "a")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports what it inherited, and exits at once
        os.write(write, str(sum(len(v) for v in STATS.counts.values())).encode())
        os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 100) == b"0"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert STATS.counts


def test_a_record_without_broker_counts_yields_no_series():
    got = _samples(_render([{"tid": "OLD"}, {"tid": "M", "broker": {"ops": {"write": {"n": [1, 2]}}}}]))
    assert not [k for k in got if k[0].startswith("weft_broker_operation")]
    assert ("weft_broker_lock_retries_total", (("manager", "M"),)) in got


PG_DSN = os.environ.get("WEFT_TEST_PG_DSN", "")  # read at import: fixtures clear WEFT_*


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_database_and_blob_sizes_and_timing_on_each_backend(backend, tmp_path):
    from weft.broker.blobs import blob_store
    from weft.metrics.exposition import render

    env: dict[str, str] = {}
    if backend == "postgres":
        if not PG_DSN:
            pytest.skip("PostgreSQL not reachable: set WEFT_TEST_PG_DSN (CI starts one)")
        env = {"WEFT_BROKER_BACKEND": "postgres", "WEFT_BROKER_TARGET": PG_DSN,
               "WEFT_BROKER_SCHEMA": f"weft_test_{uuid.uuid4().hex[:12]}"}
    (tmp_path / ".weft").mkdir()
    STATS.reset()
    broker = Broker.open(tmp_path, Settings.from_env(env))
    try:
        blob_store(broker).put(b"x" * 5000)
        got = _samples(render(broker))
        assert got[("weft_broker_database_bytes", ())] > 5000
        assert got[("weft_blob_store_bytes", ())] == 5000
        assert sum(STATS.counts["read"]) >= 1 and STATS.counts["read"][-1] == 0  # none > 30 s
    finally:
        broker.close()
        STATS.reset()
        if backend == "postgres":
            from weft.broker.postgres import drop_schema

            drop_schema(PG_DSN, env["WEFT_BROKER_SCHEMA"])
