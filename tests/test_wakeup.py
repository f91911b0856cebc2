"""Waiting on the broker: a commit by another process ends a wait (weft/runtime/wakeup.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from conftest import ROOT

from weft.runtime import wakeup
from weft.runtime.wakeup import SIGNAL_CAP, Backoff, ChangeSignal

WRITER = """
import sys
from pathlib import Path
from weft.broker import Broker
from weft.settings import Settings
with Broker.open(Path(sys.argv[1]), Settings.from_env({})) as b:
    b.write("elsewhere", "hello")
"""

PG_DSN = os.environ.get("WEFT_TEST_PG_DSN", "")  # read at import: `project` clears WEFT_*
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def _write_from_another_process(root) -> None:
    subprocess.run([sys.executable, "-c", WRITER, str(root)], check=True, timeout=60,
                   env={"PYTHONPATH": str(ROOT)})


@linux_only
def test_another_process_commit_makes_the_signal_readable(client, project):
    broker = client.broker
    signal = ChangeSignal.for_broker(broker)
    assert signal is not None
    try:
        signal.drain()
        assert signal.wait(0.05) is False  # nothing written: the wait runs out
        version = broker.data_version()
        _write_from_another_process(project.root)
        assert signal.wait(10.0) is True
        deadline = time.monotonic() + 5
        while broker.data_version() == version and time.monotonic() < deadline:
            time.sleep(0.001)  # the commit is visible a moment after its WAL write
        assert broker.data_version() != version
    finally:
        signal.close()


@linux_only
def test_a_wait_for_a_message_ends_at_the_commit_not_at_a_look(client, project):
    """poll_until blocks on the signal once past its first burst (looks only every
    SIGNAL_CAP), and still sees another process's write promptly: no wake is lost."""
    import threading

    from weft.client.polling import poll_until

    broker = client.broker
    seen: list[float] = []

    def writer() -> None:
        time.sleep(1.0)  # past the first burst: the waiter is in its long waits now
        _write_from_another_process(project.root)
        seen.append(time.monotonic())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        found = poll_until(broker, lambda: broker.peek_one("elsewhere"), timeout=30, what="it")
        got = time.monotonic()
    finally:
        thread.join()
    assert found[0] == "hello"
    assert got - seen[0] < SIGNAL_CAP + 0.2  # at most one long wait, usually far less


def test_without_a_signal_the_backoff_looks_as_before():
    backoff = Backoff()
    delays = [backoff.timeout() for _ in range(20)]
    assert delays[0] == wakeup.BURST and max(delays) == wakeup.CAP
    assert delays == sorted(delays)


def test_with_a_signal_an_idle_wait_is_long_and_a_fresh_signal_brings_the_burst_back(tmp_path):
    signal = ChangeSignal.watch(tmp_path) if sys.platform.startswith("linux") else None
    if signal is None:
        pytest.skip("no inotify here")
    backoff = Backoff(signal=signal)
    try:
        assert backoff.timeout() == SIGNAL_CAP
        assert backoff.timeout(idle=False) == wakeup.BURST  # tasks running: look as before
        (tmp_path / "f").write_text("x")
        backoff.sleep(5.0)  # returns at the write, not after 5 s
        assert backoff.timeout() == wakeup.BURST
    finally:
        backoff.close()
    assert backoff.signal is None


def test_no_signal_without_a_feed_or_a_file():
    assert ChangeSignal.for_broker(SimpleNamespace(backend="postgres", change_feed=lambda: None)) is None
    assert ChangeSignal.for_broker(SimpleNamespace(backend="redis", description="x")) is None


@pytest.mark.postgres
def test_a_notify_makes_the_postgres_signal_readable(project, monkeypatch):
    """PostgreSQL: the LISTEN socket is the signal; a write elsewhere wakes the wait."""
    if not PG_DSN:
        pytest.skip("PostgreSQL not reachable: set WEFT_TEST_PG_DSN (CI starts one)")
    import uuid

    from weft.broker import Broker
    from weft.broker.postgres import drop_schema
    from weft.settings import Settings

    schema = f"weft_test_{uuid.uuid4().hex[:12]}"
    env = {"WEFT_BROKER_BACKEND": "postgres", "WEFT_BROKER_TARGET": PG_DSN,
           "WEFT_BROKER_SCHEMA": schema}
    try:
        with Broker.open(project.root, Settings.from_env(env)) as broker:
            broker.write("setup", "x")  # the schema exists before the other process writes
            signal = ChangeSignal.for_broker(broker)
            assert signal is not None and signal.fileno() >= 0
            signal.drain()
            version = broker.data_version()
            code = ("import sys; from pathlib import Path; from weft.broker import Broker; "
                    "from weft.settings import Settings; "
                    f"b = Broker.open(Path(sys.argv[1]), Settings.from_env({env!r})); "
                    "b.write('elsewhere', 'hello'); b.close()")
            subprocess.run([sys.executable, "-c", code, str(project.root)], check=True,
                           timeout=60, env={"PYTHONPATH": str(ROOT)})
            assert signal.wait(10.0) is True
            assert broker.data_version() != version
            signal.close()
    finally:
        drop_schema(PG_DSN, schema)
