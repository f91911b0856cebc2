"""Progress from inside a task: recorded as an event, read back through the
API, shown by ``weft status TID`` and ``weft task list``, and bad reports
refused with a clear error. Real manager, real task process, real CLI."""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import wait_for

from weft import TaskFailed

PROGRESS_JOBS = '''
import os
import time

import weft


def train(marker, epochs=4):
    me = weft.current_task()
    for epoch in range(1, epochs + 1):
        me.progress(epoch / epochs, f"epoch {epoch}/{epochs}", loss=1.0 / epoch)
        if epoch == 2:
            while not os.path.exists(marker):
                time.sleep(0.01)
    return "trained"


def bad_progress():
    weft.current_task().progress(1.5)
'''


@pytest.fixture
def progress_jobs(project):
    pkg = project.root / "progpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "jobs.py").write_text(textwrap.dedent(PROGRESS_JOBS))


def test_progress_is_recorded_read_and_shown(project, client, progress_jobs):
    marker = project.root / "go"
    task = client.submit(function="progpkg.jobs:train", args=[str(marker)])
    halfway = wait_for(lambda: (p := task.progress()) and p.get("fraction") == 0.5 and p,
                       timeout=60, what="the halfway report")
    assert halfway["message"] == "epoch 2/4" and halfway["numbers"] == {"loss": 0.5}
    shown = project.cli("status", task.tid)
    assert shown.returncode == 0, shown.stderr
    assert "progress  50% epoch 2/4 (loss=0.5)" in shown.stdout
    listed = json.loads(project.cli("task", "list", "--json").stdout)
    assert listed[0]["progress"]["fraction"] == 0.5
    overview = project.cli("status").stdout
    assert "50% epoch 2/4" in overview
    series = f'weft_task_progress_ratio{{task="progpkg.jobs:train",tid="{task.tid}"}} 0.5'
    assert series in project.cli("metrics").stdout
    marker.touch()
    assert task.result(timeout=60).value == "trained"
    assert f'tid="{task.tid}"' not in project.cli("metrics").stdout  # gone once it ended
    final = task.progress()
    assert final["fraction"] == 1.0 and final["numbers"] == {"loss": 0.25}
    reports = [e for e in task.events() if e["event"] == "task_progress"]
    assert len(reports) == 4 and all(e["status"] == "running" for e in reports)
    assert task.events()[-1]["event"] == "task_completed"


def test_a_bad_report_fails_with_a_clear_error(client, progress_jobs):
    with pytest.raises(TaskFailed, match="fraction must be a number from 0 to 1, not 1.5"):
        client.run(function="progpkg.jobs:bad_progress", wait_timeout=60)


def test_a_function_task_has_one_display_name_in_tree_and_list(client, progress_jobs):
    task = client.submit(function="progpkg.jobs:train", args=["."], kwargs={"epochs": 1})
    task.result(timeout=60)
    [row] = client.tasks()
    assert (row.get("name") or row.get("target")) == "progpkg.jobs:train"
    assert client.tree(task.tid)["name"] == (row.get("name") or row.get("target"))
