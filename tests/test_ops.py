"""Operator tools: ``weft queue ...`` and ``weft tidy``, in-process through ``main``."""

from __future__ import annotations

import json
import time

import pytest


@pytest.fixture
def weft(project, capsys):
    from weft.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        out, err = capsys.readouterr()
        return code, out, err

    assert run("init")[0] == 0
    return run


def test_write_peek_read_move_delete_keep_ids(weft):
    code, out, _ = weft("queue", "write", "jobs", "first")
    assert code == 0
    first = out.strip()
    second = weft("queue", "write", "jobs", "second")[1].strip()
    assert weft("queue", "peek", "jobs") == (0, "first\n", "")
    code, out, _ = weft("queue", "peek", "jobs", "--all", "--json")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"id": first, "body": "first"}, {"id": second, "body": "second"}]
    assert weft("queue", "peek", "jobs", "--limit", "1")[1] == "first\n"
    code, out, _ = weft("queue", "list", "--json")
    assert {"queue": "jobs", "pending": 2, "total": 2} in json.loads(out)
    assert weft("queue", "move", "jobs", "other", "--id", second) == (0, f"moved {second}\n", "")
    assert weft("queue", "peek", "other", "--json")[1].strip() == json.dumps(
        {"id": second, "body": "second"}, separators=(",", ":"))
    assert weft("queue", "read", "jobs")[1] == "first\n"
    code, _, err = weft("queue", "read", "jobs")
    assert code == 4 and "empty" in err
    weft("queue", "write", "other", "third")
    assert weft("queue", "move", "other", "jobs", "--all")[1] == "moved 2\n"
    assert weft("queue", "delete", "jobs", "--id", second)[1] == "deleted 1\n"
    assert weft("queue", "delete", "jobs", "--yes")[1] == "deleted 1\n"
    code, _, err = weft("queue", "peek", "jobs")
    assert code == 4


def test_delete_whole_queue_asks_first(weft, monkeypatch):
    weft("queue", "write", "keep", "x")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    code, _, err = weft("queue", "delete", "keep")
    assert code != 0
    assert weft("queue", "peek", "keep")[1] == "x\n"


def test_bad_queue_arguments_are_usage_errors(weft):
    for args in (["queue", "move", "a"], ["queue", "read", "q", "--id", "abc"],
                 ["queue", "frobnicate"]):
        code, _, err = weft(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1, (args, err)


def _finished(client, command=("true",)):
    task = client.submit(command=list(command))
    task.wait(timeout=30)
    return task


def test_tidy_drops_only_old_finished_tasks(project, client, manager):
    old = _finished(client)
    time.sleep(1.2)  # age the first result past a 1 s retention (a clock interval, not a sync)
    new = _finished(client)
    client.auto_start = False
    queued = client.submit(command=["true"], delay=3600)
    from weft.client.maintenance import tidy

    report = tidy(client.broker, retention=1.0, dry_run=True)
    assert report["tasks_to_drop"] == 1 and report["events_to_drop"] >= 3
    assert project.rows(f"T{old.tid}.outbox")  # dry run changed nothing
    assert tidy(client.broker, retention=1.0)["vacuumed"] is True
    assert project.rows(f"T{old.tid}.outbox") == []
    assert project.events(old.tid) == []
    assert project.rows(f"T{new.tid}.outbox") and project.events(new.tid)
    assert [r["taskspec"]["command"] for r in project.rows("weft.spawn.requests")] == [["true"]]
    assert not queued.done()
    assert client.run(command=["echo", "after"]).stdout == "after\n"  # managers unharmed
    proc = project.cli("tidy", "--retention", "3600", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["tasks_dropped"] == 0


def test_tidy_while_tasks_flow_touches_nothing_unfinished(project, client, manager):
    from conftest import wait_for

    tasks = [client.submit(command=["sleep", "0.2"]) for _ in range(12)]
    watched = {t.tid for t in tasks}

    def settled():
        assert project.cli("tidy", "--retention", "0").returncode == 0
        live = project.rows("weft.spawn.requests") or _reserved(project)
        return not live

    wait_for(settled, timeout=60, what="all tasks through while tidying")
    failures = [e for e in project.events() if e.get("tid") in watched
                and e.get("status") in ("failed", "killed", "cancelled")]
    assert failures == []
    assert client.task(manager.tid).ping()["reply"] == "PONG"


def _reserved(project):
    import sqlite3

    con = sqlite3.connect(project.root / ".weft" / "broker.db")
    try:
        return con.execute("SELECT count(*) FROM messages WHERE queue LIKE 'T%.reserved' "
                           "AND claimed = 0").fetchone()[0]
    finally:
        con.close()
