"""``weft submit -``: one command task per line, checked whole, queued in batches."""

from __future__ import annotations

import json
import sqlite3

from conftest import cli_json, wait_for

from weft.names import SPAWN_REQUESTS


def _results(client, tids):
    return [client.task(tid).wait(timeout=60) for tid in tids]


def test_lines_become_tasks_in_order_and_run(project, cli_manager, client):
    text = "echo one\n\n# a comment\necho 'two words'\n  printf '%s|' a\\ b c  \n"
    proc = project.cli("submit", "-", input=text)
    assert proc.returncode == 0, proc.stderr
    tids = proc.stdout.split()
    assert len(tids) == 3 and tids == sorted(tids)
    results = _results(client, tids)
    assert [r.status for r in results] == ["completed"] * 3
    assert [r.stdout for r in results] == ["one\n", "two words\n", "a b|c|"]
    submitted = [e for e in project.events() if e.get("event") == "task_submitted"]
    assert [e["tid"] for e in submitted] == tids  # each record names its request's TID
    assert submitted[1]["spec"]["command"] == ["echo", "two words"]


def test_a_bad_line_is_named_and_nothing_is_queued(project):
    proc = project.cli("submit", "-", input="echo fine\necho 'unclosed\necho later\n")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == "weft: error: line 2: No closing quotation"
    assert proc.stdout == ""
    assert project.rows(SPAWN_REQUESTS) == []
    assert [e for e in project.events() if e.get("event") == "task_submitted"] == []
    empty = project.cli("submit", "-", input="true\n'' arg\n")
    assert empty.returncode == 2
    assert empty.stderr.splitlines()[-1] == "weft: error: line 2: the command is empty"
    assert project.rows(SPAWN_REQUESTS) == []


def test_options_apply_to_every_line_and_shell_runs_each_line(project, cli_manager, client):
    proc = project.cli("submit", "--shell", "--label", "batch=7", "--env", "X=hi", "--batch", "2",
                       "--json", "-", input="echo $X | tr a-z A-Z\necho b >&2\nexit 3\n")
    out = cli_json(proc)
    assert out["count"] == 3 and len(out["tids"]) == 3
    results = _results(client, out["tids"])
    assert results[0].stdout == "HI\n"
    assert results[1].stderr == "b\n"
    assert results[2].exit_code == 3
    specs = [e["spec"] for e in project.events() if e.get("event") == "task_submitted"]
    assert all(s["labels"] == {"batch": "7"} and s["shell"] for s in specs)


def test_file_argument_and_checks_on_the_submitting_host(project, tmp_path):
    listing = tmp_path / "jobs.txt"
    listing.write_text("true\n")
    missing = project.cli("submit", "--cwd", str(tmp_path / "nope"), str(listing))
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[-1].startswith("weft: error: line 1: cwd: no such directory")
    unreadable = project.cli("submit", str(tmp_path / "absent.txt"))
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr
    raw = tmp_path / "raw.txt"
    raw.write_bytes(b"echo \xff\n")
    binary = project.cli("submit", str(raw))
    assert binary.returncode == 2 and "not UTF-8" in binary.stderr
    assert project.rows(SPAWN_REQUESTS) == []


def test_many_lines_in_several_batches_all_run(project, cli_manager, client):
    import time

    start = time.monotonic()
    proc = project.cli("submit", "--batch", "64", "-", input="true\n" * 300)
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    tids = proc.stdout.split()
    assert len(tids) == 300 == len(set(tids)) and tids == sorted(tids)
    assert took < 20  # the benchmark (benchmarks/latency.py) measures the rate; here: no loop
    wait_for(lambda: client.task(tids[-1]).done(), timeout=120, what="the last task")
    last = client.task(tids[-1]).wait(timeout=10)
    assert last.status == "completed"
    submitted = [e["tid"] for e in project.events() if e.get("event") == "task_submitted"]
    assert submitted == tids


def test_a_broker_failure_part_way_keeps_and_prints_the_batches_queued(project):
    """The second batch is refused inside its transaction by the database itself (a
    trigger aborts the insert of its request): the first stays queued, and its TID is
    printed, with --json too, before the one-line error."""
    assert project.cli("init").returncode == 0
    db = sqlite3.connect(project.root / ".weft" / "broker.db")
    try:
        db.execute("CREATE TRIGGER refuse_marked BEFORE INSERT ON messages "
                   "WHEN NEW.body LIKE '%refuse-me%' BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
        db.commit()
        printed: list[str] = []
        for json_flag in ((), ("--json",)):
            proc = project.cli("submit", "--batch", "1", *json_flag, "-",
                               input="echo first\necho refuse-me\n")
            assert proc.returncode == 3, proc.stderr
            error = proc.stderr.splitlines()[-1]
            assert error.startswith("weft: error: ") and "1 task(s) were queued" in error
            tids = json.loads(proc.stdout)["tids"] if json_flag else proc.stdout.split()
            assert len(tids) == 1
            printed += tids
    finally:
        db.execute("DROP TRIGGER IF EXISTS refuse_marked")
        db.commit()
        db.close()
    submitted = [e["tid"] for e in project.events() if e.get("event") == "task_submitted"]
    assert submitted == printed  # the refused batch left nothing behind


def test_a_line_over_the_message_limit_is_refused_before_anything_is_queued(project):
    text = "echo first\n: " + "x" * (10 << 20) + "\n"  # --shell: no word splitting of 10 MiB
    proc = project.cli("submit", "--shell", "-", input=text)
    assert proc.returncode == 2, proc.stderr
    error = proc.stderr.splitlines()[-1]
    assert error.startswith("weft: error: line 2: the task is ") and "message limit" in error
    assert not [e for e in project.events() if e.get("event") == "task_submitted"]


def test_refused_input_creates_no_project(project, tmp_path):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    env = {"WEFT_CONTEXT": str(fresh)}
    bad = project.cli("submit", "-", input="echo fine\necho 'unclosed\n", cwd=fresh, env=env)
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == "weft: error: line 2: No closing quotation"
    big = project.cli("submit", "--shell", "-", input=": " + "x" * (10 << 20) + "\n",
                      cwd=fresh, env=env)
    assert big.returncode == 2 and "message limit" in big.stderr
    assert not (fresh / ".weft").exists()
