"""Many writers, many managers, one broker: every accepted request runs exactly once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter

from conftest import wait_for

CLIENT = """
import json, sys
from weft.client.client import WeftClient
root, count = sys.argv[1], int(sys.argv[2])
with WeftClient(root, auto_start=False) as client:
    tids = [client.submit(function="os:getpid").tid for _ in range(count)]
print(json.dumps(tids))
"""


def _sql(project, query):
    con = sqlite3.connect(project.root / ".weft" / "broker.db", timeout=30)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_three_managers_four_clients_500_tasks(project, client):
    managers = [client.workers.start(max_concurrency=16) for _ in range(3)]
    for info in managers:
        project.track(info.pid)
    writers = [subprocess.Popen([sys.executable, "-c", CLIENT, str(project.root), "125"],
                                env=project.env, stdout=subprocess.PIPE, text=True)
               for _ in range(4)]
    tids: list[str] = []
    for proc in writers:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        tids += json.loads(out)
    assert len(set(tids)) == 500

    def finished():
        rows = _sql(project, "SELECT count(*) FROM messages WHERE queue = 'weft.tasks.log' "
                             "AND body LIKE '%\"event\":\"task_completed\"%'")
        return rows[0][0] >= 500

    wait_for(finished, timeout=150, what="500 completions")
    events = project.events()
    started = Counter(e["tid"] for e in events if e["event"] == "task_started")
    completed = Counter(e["tid"] for e in events if e["event"] == "task_completed")
    assert set(started) == set(tids) and set(started.values()) == {1}
    assert set(completed) == set(tids) and set(completed.values()) == {1}
    results = Counter(q[1:].split(".")[0] for (q,) in _sql(
        project, "SELECT queue FROM messages WHERE queue LIKE 'T%.outbox' "
                 "AND body LIKE '%\"type\":\"result\"%'"))
    assert set(results) == set(tids) and set(results.values()) == {1}
    by_manager = Counter(e["manager_tid"] for e in events if e["event"] == "task_started")
    assert len(by_manager) >= 2, by_manager  # the work really was shared
    assert _sql(project, "SELECT count(*) FROM messages WHERE claimed = 0 AND "
                         "(queue LIKE 'T%.reserved' OR queue = 'weft.spawn.requests')") == [(0,)]
