"""``weft run`` as a user types it: real CLI processes, a real manager."""

from __future__ import annotations

import json
import os
import textwrap

from conftest import pid_alive, wait_for


def test_first_run_starts_manager_and_second_reuses_it(project):
    first = project.cli("run", "echo", "hello")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "hello\n"
    assert "created project context" in first.stderr
    listing = project.cli("worker", "list", "--json")
    managers = json.loads(listing.stdout)
    assert len(managers) == 1
    assert managers[0]["status"] == "active"
    assert pid_alive(managers[0]["pid"])
    second = project.cli("run", "echo", "again")
    assert second.returncode == 0 and second.stdout == "again\n"
    assert "created" not in second.stderr
    assert [m["tid"] for m in json.loads(project.cli("worker", "list", "--json").stdout)] == [
        managers[0]["tid"]]


def test_exit_code_is_passed_through(project, manager):
    proc = project.cli("run", "--", "sh", "-c", "exit 3")
    assert proc.returncode == 3


def test_timeout_exits_124_quickly(project, manager):
    import time

    start = time.monotonic()
    proc = project.cli("run", "--timeout", "1", "--", "sleep", "30")
    assert proc.returncode == 124
    # The 5 s figure is a benchmark matter on a busy box; here: far less than the 30 s sleep.
    assert time.monotonic() - start < 20
    assert "timeout" in proc.stderr


def test_killed_by_signal_is_128_plus_n(project, manager):
    proc = project.cli("run", "--", "sh", "-c", "kill -TERM $$")
    assert proc.returncode == 128 + 15


def test_stdout_and_stderr_are_separated(project, manager):
    proc = project.cli("run", "--", "sh", "-c", "echo out; echo err >&2")
    assert proc.stdout == "out\n"
    assert "err\n" in proc.stderr


def test_command_not_found(project, manager):
    proc = project.cli("run", "--", "definitely-not-a-command-xyz")
    assert proc.returncode == 127
    assert "command not found" in proc.stderr


def test_no_wait_prints_tid_and_result_waits(project, manager):
    proc = project.cli("run", "--no-wait", "--", "sh", "-c", "echo later; exit 4")
    assert proc.returncode == 0
    tid = proc.stdout.strip()
    assert len(tid) == 19 and tid.isdigit()
    res = project.cli("result", tid, "--timeout", "30")
    assert res.returncode == 4
    assert res.stdout == "later\n"
    short = project.cli("result", tid[-10:], "--json")
    assert json.loads(short.stdout)["exit_code"] == 4


def test_json_prints_result_message(project, manager):
    proc = project.cli("run", "--json", "echo", "x")
    payload = json.loads(proc.stdout)
    assert payload["type"] == "result"
    assert payload["status"] == "completed"
    assert payload["exit_code"] == 0
    assert payload["stdout"] == "x\n"


def test_env_and_cwd(project, manager, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    proc = project.cli("run", "--env", "GREETING=hi there", "--cwd", str(other), "--",
                       "sh", "-c", 'echo "$GREETING"; pwd')
    assert proc.stdout.splitlines() == ["hi there", str(other)]


def test_runs_in_submit_directory_by_default(project, manager):
    sub = project.root / "sub"
    sub.mkdir()
    proc = project.cli("run", "pwd", cwd=sub)
    assert proc.stdout.strip() == str(sub)


def test_shell_needs_flag(project, manager):
    plain = project.cli("run", "echo a | tr a b")
    assert plain.returncode == 127  # one argv word, no shell
    shell = project.cli("run", "--shell", "echo a | tr a b")
    assert shell.stdout == "b\n"


def _write_module(project, body: str) -> None:
    pkg = project.root / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "jobs.py").write_text(textwrap.dedent(body))


def test_function_target_value_and_failure(project, manager):
    _write_module(project, """
        def square(x):
            return x * x

        def greet(name, punct="!"):
            print("working")
            return f"hello {name}{punct}"

        def boom():
            raise ValueError("kaboom-42")
    """)
    ok = project.cli("run", "--function", "pkg.jobs:square", "--arg", "7")
    assert ok.returncode == 0 and ok.stdout == "49\n"
    kw = project.cli("run", "--function", "pkg.jobs:greet", "--arg", "bob", "--kwarg", "punct=?")
    assert kw.stdout == "working\nhello bob?\n"
    bad = project.cli("run", "--function", "pkg.jobs:boom")
    assert bad.returncode == 1
    assert "kaboom-42" in bad.stderr
    assert "Traceback" in bad.stderr  # the task's traceback, reported, not ours
    missing = project.cli("run", "--function", "pkg.jobs:nope")
    # a target that does not exist is one line and exit 2 (issue 14), not a traceback
    assert missing.returncode == 2 and "cannot load" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_spec_file(project, manager):
    spec = project.root / "task.json"
    spec.write_text(json.dumps({"command": ["sh", "-c", "echo from-spec"], "name": "s"}))
    proc = project.cli("run", "--spec", str(spec))
    assert proc.returncode == 0 and proc.stdout == "from-spec\n"


def test_bad_spec_file_is_one_line_exit_2(project):
    spec = project.root / "bad.json"
    spec.write_text(json.dumps({"command": ["true"], "colour": "blue"}))
    proc = project.cli("run", "--spec", str(spec))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "colour" in lines[0] and "unknown field" in lines[0]
    assert "Traceback" not in proc.stderr


def test_bad_cli_input_is_one_line_exit_2(project):
    for args in (["run"], ["run", "--timeout", "abc", "true"], ["run", "--bogus", "x"],
                 ["run", "--arg", "1", "true"], ["task", "ping", "xyz"]):
        proc = project.cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_bad_environment_knob_is_usage_error(project):
    proc = project.cli("run", "true", env={"WEFT_MANAGER_IDLE_TIMEOUT": "abc"})
    assert proc.returncode == 2
    assert "WEFT_MANAGER_IDLE_TIMEOUT" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_process_title_names_the_task(project, manager):
    proc = project.cli("run", "--no-wait", "--name", "titled", "--", "sleep", "30")
    tid = proc.stdout.strip()
    status = wait_for(lambda: _running_status(project, tid), what="task running")
    pid = status["pid"]
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        title = fh.read().replace(b"\x00", b" ").decode()
    assert f"weft:{tid[-10:]}:titled:running" in title
    project.cli("task", "kill", tid)


def _running_status(project, tid):
    proc = project.cli("task", "status", tid, "--json")
    if proc.returncode != 0:
        return None
    reply = json.loads(proc.stdout)
    return reply if reply.get("status") == "running" and reply.get("pid") else None


def test_help_is_fast_and_lists_commands(project):
    proc = project.cli("--help")
    assert proc.returncode == 0
    for name in ("run", "worker", "task", "result", "status", "queue", "tidy"):
        assert name in proc.stdout
    assert os.environ.get("WEFT_CONTEXT") is None


def test_output_is_complete_and_a_closed_pipe_is_one_exit_code(project, manager):
    """The executable ends with os._exit after flushing: nothing may be lost,
    and a reader that goes away early is exit 1, not a traceback."""
    import subprocess
    import sys

    big = project.cli("run", "--", sys.executable, "-c", "print('x' * 300000)")
    assert big.returncode == 0, big.stderr
    assert big.stdout == "x" * 300000 + "\n"
    as_json = project.cli("run", "--json", "--", sys.executable, "-c", "print('y' * 100000)")
    assert json.loads(as_json.stdout)["exit_code"] == 0
    closed = subprocess.run(
        ["bash", "-c", f"'{sys.executable}' -m weft.cli.main run -- '{sys.executable}' -c "
                       "\"print('z' * 300000)\" | head -c 10 >/dev/null; "
                       "echo \"weft exit ${PIPESTATUS[0]}\""],
        cwd=project.root, env=project.env, capture_output=True, text=True, timeout=60)
    assert closed.stdout == "weft exit 1\n", (closed.stdout, closed.stderr)
    assert "Traceback" not in closed.stderr and "Exception ignored" not in closed.stderr
