"""A small chaos run (benchmarks/chaos.py): kills at random, nothing lost, nothing twice."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

CHAOS = Path(__file__).resolve().parent.parent / "benchmarks" / "chaos.py"


@pytest.mark.slow
def test_small_chaos_run_keeps_every_promise(project):
    from weft import context

    spec = importlib.util.spec_from_file_location("weft_chaos", CHAOS)
    assert spec and spec.loader
    chaos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chaos)
    context.init(project.root)
    report = chaos.run_chaos(project.root, tasks=150, managers=2, seed=7, kill_every=0.4)
    assert report["checks"] == {
        "every_task_one_terminal_event": True,
        "every_task_one_result": True,
        "no_attempt_started_twice": True,
        "nothing_left_reserved_or_queued": True,
    }, report
    assert sum(report["kills"].values()) >= 3, report


@pytest.mark.slow
def test_small_chaos_run_with_broker_outages(project):
    import shutil

    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("the SQLite outage fault makes the broker immutable: needs root and chattr")
    from weft import context

    spec = importlib.util.spec_from_file_location("weft_chaos", CHAOS)
    assert spec and spec.loader
    chaos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chaos)
    context.init(project.root)
    report = chaos.run_chaos(project.root, tasks=150, managers=2, seed=3, kill_every=0.4,
                             outage=2.0)
    assert report["ok"], report
    assert report["kills"].get("broker_outage", 0) >= 1, report
