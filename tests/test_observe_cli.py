"""``weft status --watch``, ``weft wait``, ``weft events --follow`` and
``weft task logs --follow`` as real processes (stdout is a pipe: plain text)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time

import pytest


class Output:
    """Everything a process printed so far; :meth:`until` reads more, never hangs."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.text = ""

    def until(self, done, *, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not done(self.text):
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"timed out; output so far:\n{self.text}")
                if sel.select(left):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        pytest.fail(f"process ended early; output:\n{self.text}")
                    self.text += chunk.decode()
        return self.text


def interrupt(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    return proc.returncode, err


def test_status_watch_redraws_until_ctrl_c(project, manager):
    sleeper = project.cli("run", "--no-wait", "--name", "napper", "--", "sleep", "30")
    proc = project.popen("status", "--watch", "--interval", "0.2")
    text = Output(proc).until(lambda t: t.count("== weft status") >= 3 and "napper" in t)
    code, err = interrupt(proc)
    assert code in (0, 130) and "Traceback" not in err
    frame = text.split("== weft status")[-2]
    assert manager.tid in frame and "running   1" in frame and "rss " in frame
    assert "tasks   [" in frame  # a capacity bar
    project.cli("task", "kill", sleeper.stdout.strip())


def test_wait_many_exit_codes(project, client, manager):
    def submit(*cmd: str) -> str:
        return client.submit(command=list(cmd)).tid

    good = [submit("true"), submit("sh", "-c", "sleep 0.3")]
    ok = project.cli("wait", *good)
    assert ok.returncode == 0, ok.stderr
    assert all(f"{tid}  completed" in ok.stdout for tid in good)
    assert "2 completed, 0 did not" in ok.stdout

    bad = submit("sh", "-c", "exit 9")
    mixed = project.cli("wait", good[0], bad[-10:], "--json")
    assert mixed.returncode == 1
    statuses = {r["tid"]: r["status"] for r in map(json.loads, mixed.stdout.splitlines())}
    assert statuses == {good[0]: "completed", bad: "failed"}

    slow = submit("sleep", "30")
    start = time.monotonic()
    late = project.cli("wait", slow, "--timeout", "0.5")
    assert late.returncode == 5 and time.monotonic() - start < 10
    assert "still running" in late.stderr
    client.task(slow).kill()


def test_events_follow_prints_new_events_as_they_happen(project, manager):
    proc = project.popen("events", "--follow", "--request-id", "req-follow", "--json")
    out = Output(proc)
    try:
        first = project.cli("run", "--request-id", "req-follow", "--", "echo", "a")
        assert first.returncode == 0
        out.until(lambda t: t.count("task_completed") == 1)
        second = project.cli("run", "--request-id", "req-follow", "--", "echo", "b")
        other = project.cli("run", "--request-id", "req-other", "--", "echo", "c")
        assert second.returncode == 0 and other.returncode == 0
        text = out.until(lambda t: t.count("task_completed") == 2)
    finally:
        code, err = interrupt(proc)
    assert code in (0, 130) and "Traceback" not in err
    events = [json.loads(line) for line in text.splitlines()]
    assert {e["request_id"] for e in events} == {"req-follow"}
    assert [e["event"] for e in events].count("task_started") == 2
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def test_task_logs_follow_interleaves_output_and_events_until_the_end(project, manager):
    tid = project.cli("run", "--no-wait", "--", "sh", "-c",
                      "echo one; sleep 0.4; echo two >&2; sleep 0.4; echo three").stdout.strip()
    proc = project.cli("task", "logs", tid, "--follow")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines.index("one") < lines.index("three")
    assert "two" in proc.stderr
    assert "task_started" in lines[lines.index("one") - 1]
    assert "task_completed" in lines[-1]


def test_bad_input_is_one_line(project, manager):
    for args in (["wait", "12"], ["task", "logs", "nonsense"], ["status", "--tree"],
                 ["status", "--watch", "--json"]):
        proc = project.cli(*args)
        assert proc.returncode == 2, args
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, args
    unknown = project.cli("task", "logs", "1234567890123456789")
    assert unknown.returncode == 4 and "no task" in unknown.stderr
