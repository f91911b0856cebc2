"""The on_finish project setting (issue 14): the manager runs it for each
ended task with the task's identity in its environment, and a slow or
failing hook never holds up dispatch."""

from __future__ import annotations

import time

from conftest import wait_for


def test_on_finish_runs_per_task_and_never_blocks(project, tmp_path):
    out = tmp_path / "hooks.log"
    hook = (f'echo "$WEFT_TID $WEFT_STATUS $WEFT_EXIT_CODE $WEFT_NAME" >> {out}; '
            'if [ "$WEFT_NAME" = slow ]; then sleep 60; fi; exit 3')
    env = {"WEFT_ON_FINISH": hook, "WEFT_ON_FINISH_TIMEOUT": "1"}
    assert project.cli("worker", "start", env=env).returncode == 0
    assert project.cli("run", "--name", "slow", "true").returncode == 0
    started = time.monotonic()
    assert project.cli("run", "--name", "bad", "--", "sh", "-c", "exit 7").returncode == 7
    assert time.monotonic() - started < 10  # the sleeping hook did not hold dispatch
    lines = wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 2 and
                     out.read_text().splitlines(), what="two hook runs")
    slow, bad = (line.split() for line in lines)
    assert slow[1:] == ["completed", "0", "slow"] and len(slow[0]) == 19
    assert bad[1:] == ["failed", "7", "bad"]
    log = next((project.root / ".weft" / "logs").glob("manager-*.log"))
    wait_for(lambda: "on_finish" in log.read_text() and "timed out" in log.read_text(),
             what="the timed-out hook logged")
    assert "exited with code 3" in log.read_text()


def test_bad_on_finish_timeout_is_one_line(project):
    proc = project.cli("run", "true", env={"WEFT_ON_FINISH_TIMEOUT": "-1"})
    assert proc.returncode == 2 and "WEFT_ON_FINISH_TIMEOUT" in proc.stderr
