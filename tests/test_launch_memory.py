"""The launcher stays small: bounded memory of launches and reports, and only the imports tasks share."""

from __future__ import annotations

from types import SimpleNamespace

from weft.runtime.launch_memory import KEEP_MIN, KEEP_PER_RUNNING, RECENT_RESULTS, LaunchMemory


def _proc(tid: str, size: int = 10) -> SimpleNamespace:
    return SimpleNamespace(tid=tid, result=SimpleNamespace(size=size))


def test_memory_is_bounded_by_the_busiest_moment_not_by_the_task_count() -> None:
    memory = LaunchMemory()
    for i in range(20_000):
        tid = f"t{i}"
        memory.launch(tid, 1, running={tid, f"t{i - 1}"})  # two running at a time
        memory.report(_proc(tid), {"ev": "exit", "tid": tid}, 10)
    assert len(memory.launched) == KEEP_MIN
    assert len(memory.recent) == KEEP_MIN
    assert "t19999" in memory.recent and "t0" not in memory.recent  # the newest are kept


def test_keep_grows_with_the_most_tasks_running_together() -> None:
    memory = LaunchMemory()
    running = {f"r{i}" for i in range(100)}
    for tid in running:
        memory.launch(tid, 1, running)
    for i in range(5_000):
        memory.launch(f"t{i}", 1, running | {f"t{i}"})
    assert memory.keep == KEEP_PER_RUNNING * 101
    assert len(memory.launched) == memory.keep


def test_a_running_task_is_never_forgotten_however_many_launches_follow() -> None:
    memory = LaunchMemory()
    memory.launch("long", 3, running={"long"})
    for i in range(10_000):
        memory.launch(f"t{i}", 1, running={"long", f"t{i}"})
    assert memory.launched["long"] == 3
    assert len(memory.launched) <= memory.keep


def test_large_results_are_forgotten_past_the_byte_cap() -> None:
    memory = LaunchMemory()
    big = RECENT_RESULTS // 2 + 1
    for i in range(3):
        memory.report(_proc(f"t{i}", big), {"ev": "exit"}, big)
    assert list(memory.recent) == ["t2"]


def test_the_launcher_loads_the_pickle_codec_once_and_no_pydantic() -> None:
    """Every function task's process is a fork of the launcher: what the launcher has
    imported it shares; what it has not, each task imports again (7 ms for the codec)."""
    import subprocess
    import sys

    code = ("import sys, weft.runtime.supervisor; "
            "print(sorted(m for m in ('weft.runtime.calls', 'pydantic', 'simplebroker') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "['weft.runtime.calls']"
