"""Real payloads end to end (issue 12): bytes out exactly as written, stdin in,
large values through the blob store, memory bounded. Real CLI processes, a real
manager and broker; each test is one bullet of the issue's list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import pid_alive, wait_for

JOBS = textwrap.dedent('''
    import random

    def big_string(n):
        return "x" * n

    def big_bytes(n):
        return random.Random(7).randbytes(n)

    def big_list(n):
        return [float(i) for i in range(n)]

    class Stall:
        """Pickling it marks a file and hangs: the result is half-written by then."""
        def __init__(self, mark):
            self.mark = mark

        def __reduce__(self):
            import time
            open(self.mark, "w").close()
            time.sleep(120)
            return (Stall, (self.mark,))

    def half_written(n, mark):
        return (random.Random(7).randbytes(n), Stall(mark))
''')


@pytest.fixture
def payload_jobs(project):
    (project.root / "payload_jobs.py").write_text(JOBS)


def _weft(project, *args, stdin=subprocess.DEVNULL, merge=False, env=None, timeout=120):
    """Run the CLI with binary stdout/stderr (merged into one pipe with ``merge``)."""
    return subprocess.run(
        [sys.executable, "-m", "weft.cli.main", *args], cwd=project.root,
        env={**project.env, **(env or {})}, stdin=stdin, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge else subprocess.PIPE, timeout=timeout)


def test_binary_output_is_identical(project, manager):
    data = os.urandom(64 * 1024)
    (project.root / "random.bin").write_bytes(data)
    proc = _weft(project, "run", "--", "cat", "random.bin")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data


def test_non_utf8_bytes_come_back_exactly_and_json_names_base64(project, manager):
    proc = _weft(project, "run", "--", "printf", "a\\377\\376b")
    assert proc.stdout == b"a\xff\xfeb"
    as_json = json.loads(_weft(project, "run", "--json", "--", "printf", "a\\377\\376b").stdout)
    assert as_json["stdout_encoding"] == "base64" and as_json["stdout"] == "Yf/+Yg=="
    tid = as_json["tid"]
    assert _weft(project, "result", tid).stdout == b"a\xff\xfeb"
    logs = _weft(project, "task", "logs", tid)
    assert b"a\xff\xfeb" in logs.stdout
    chunks = [json.loads(line) for line in _weft(project, "task", "logs", "--json", tid).stdout
              .splitlines() if b'"stream"' in line]
    assert [(c["encoding"], c["data"]) for c in chunks] == [("base64", "Yf/+Yg==")]


def test_stdout_and_stderr_keep_their_order(project, manager):
    script = "echo out1; sleep 0.2; echo err1 >&2; sleep 0.2; echo out2"
    proc = _weft(project, "run", "--", "sh", "-c", script, merge=True)
    assert proc.stdout.splitlines() == [b"out1", b"err1", b"out2"]
    tid = json.loads(_weft(project, "run", "--json", "--", "sh", "-c", script).stdout)["tid"]
    chunks = [json.loads(line) for line in _weft(project, "task", "logs", "--json",
                                                  tid).stdout.splitlines()
              if b'"stream"' in line]
    assert [(c["stream"], c["data"]) for c in chunks] == [
        ("stdout", "out1\n"), ("stderr", "err1\n"), ("stdout", "out2\n")]
    assert [c["seq"] for c in chunks] == [1, 2, 3]


def test_piped_stdin_reaches_the_task(project, manager):
    proc = subprocess.run([sys.executable, "-m", "weft.cli.main", "run", "--", "cat"],
                          cwd=project.root, env=project.env, input=b"input\n\xff",
                          capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == b"input\n\xff", proc.stderr
    (project.root / "in.bin").write_bytes(b"from a file")
    assert _weft(project, "run", "--stdin", "in.bin", "--", "cat").stdout == b"from a file"
    with open(project.root / "in.bin", "rb") as fh:
        assert _weft(project, "run", "--no-stdin", "--", "cat", stdin=fh).stdout == b""


def test_an_open_stdin_that_never_ends_does_not_hang_weft_run(project, manager):
    proc = subprocess.Popen([sys.executable, "-m", "weft.cli.main", "run", "--", "echo", "hi"],
                            cwd=project.root, env=project.env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    project.track(proc.pid)
    try:  # our end of its stdin stays open throughout
        wait_for(lambda: proc.poll() is not None, timeout=30, what="weft run to exit")
        assert proc.returncode == 0 and proc.stdout.read() == b"hi\n"
    finally:
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()


def test_api_stdin_takes_bytes_and_files(project, client, manager):
    data = os.urandom(300_000)
    assert client.run(command=["cat"], stdin=data, wait_timeout=60).stdout_bytes == data
    path = project.root / "in.bin"
    path.write_bytes(data[:1000])
    with open(path, "rb") as fh:
        assert client.run(command=["wc", "-c"], stdin=fh, wait_timeout=60).stdout.strip() == "1000"
    from weft.errors import InvalidSpec

    with pytest.raises(InvalidSpec, match="stdin"):
        client.submit(command=["cat"], stdin="text")


def test_an_11_mb_result_round_trips_and_the_manager_carries_on(project, client, manager,
                                                                payload_jobs):
    result = client.run(function="payload_jobs:big_string", args=[11_000_000], wait_timeout=120)
    assert result.value == "x" * 11_000_000
    assert result.raw["value"] is None and result.raw["value_blob"]["size"] > 11_000_000
    assert pid_alive(manager.pid)
    assert client.run(command=["echo", "after"], wait_timeout=60).stdout == "after\n"


def _peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory so far (VmHWM: exact, no sampling)."""
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024


def test_a_large_result_goes_to_the_blob_store_from_the_task_not_through_its_hosts(
        project, client, manager, payload_jobs):
    """Past the chunk size the task process stores its result itself: only the blob's
    reference crosses the launcher and the manager, whose peak memory does not move."""
    import random

    from weft.models import values

    launcher = int(manager.record["launcher_pid"])
    client.run(function="payload_jobs:big_bytes", args=[10], serializer="pickle", wait_timeout=60)
    before = [_peak_rss_mb(pid) for pid in (manager.pid, launcher)]
    size = 24_000_000
    result = client.run(function="payload_jobs:big_bytes", args=[size], serializer="pickle",
                        wait_timeout=120)
    assert result.value == random.Random(7).randbytes(size)
    ref = result.raw["value_blob"]
    assert result.raw["value"] is None and ref["encoding"] == "pickle" and ref["size"] > size
    grew = [_peak_rss_mb(pid) - was for pid, was in zip((manager.pid, launcher), before,
                                                          strict=True)]
    assert max(grew) < 8, f"manager/launcher peak RSS grew by {grew} MB for a 24 MB result"
    shown = _weft(project, "result", "--json", result.tid)  # the envelope, read when asked
    assert shown.returncode == 0, shown.stderr
    assert values.decode(json.loads(shown.stdout)["value"]) == result.value


def test_a_task_killed_while_it_stores_its_result_leaves_no_reference(project, client, manager,
                                                                     payload_jobs):
    from weft.broker.blobs import blob_store

    mark = project.root / "writing"
    task = client.submit(function="payload_jobs:half_written", args=[3_000_000, str(mark)],
                         serializer="pickle")
    wait_for(mark.exists, timeout=60, what="the task to be storing its result")
    partial = list((project.root / ".weft" / "blobs" / "tmp").iterdir())
    assert len(partial) == 1 and partial[0].stat().st_size >= 3_000_000
    task.kill()
    result = task.wait(timeout=60)
    assert result.status == "killed" and result.raw.get("value_blob") is None
    assert blob_store(client.broker).usage()["blobs"] == 0  # nothing whole, nothing referred to
    assert pid_alive(manager.pid)


def test_an_over_size_result_fails_the_task_not_the_manager(project, client, payload_jobs,
                                                           monkeypatch):
    monkeypatch.setenv("WEFT_MAX_RESULT_MB", "1")
    info = client.workers.start()
    project.track(info.pid)
    result = client.task(client.submit(function="payload_jobs:big_string",
                                       args=[3_000_000]).tid).wait(timeout=120)
    assert result.status == "failed" and result.reason == "result_too_large"
    assert "WEFT_MAX_RESULT_MB" in (result.error or "")
    assert client.run(function="payload_jobs:big_string", args=[10],
                      wait_timeout=60).value == "x" * 10
    assert pid_alive(info.pid)


def test_output_past_the_chunk_size_goes_to_blobs_and_tidy_removes_them(project, manager):
    data = os.urandom(3 * 1024 * 1024)
    (project.root / "big.bin").write_bytes(data)
    proc = _weft(project, "run", "--", "cat", "big.bin")
    assert proc.stdout == data
    status = json.loads(_weft(project, "status", "--json").stdout)
    assert status["blob_store"]["blobs"] >= 2 and status["blob_store"]["bytes"] >= 2 << 20
    assert os.path.getsize(project.root / ".weft" / "broker.db") < len(data)
    time.sleep(1.1)  # age the result past a 1 s retention (a clock interval, not a sync)
    tidied = json.loads(_weft(project, "tidy", "--retention", "1", "--json").stdout)
    assert tidied["tasks_dropped"] >= 1 and tidied["blobs_dropped"] >= 2
    assert json.loads(_weft(project, "status", "--json").stdout)["blob_store"]["blobs"] == 0
    blobs = project.root / ".weft" / "blobs"
    assert oct(blobs.stat().st_mode & 0o777) == "0o700"


def test_a_corrupt_blob_is_reported_not_returned(project, client, manager):
    data = os.urandom(2 * 1024 * 1024)
    result = client.run(command=["cat"], stdin=data, wait_timeout=60)
    files = [p for p in (project.root / ".weft" / "blobs").rglob("*")
             if p.is_file() and p.parent.name != "tmp"]
    assert files and all(oct(p.stat().st_mode & 0o777) == "0o600" for p in files)
    for path in files:
        raw = bytearray(path.read_bytes())
        raw[0] ^= 0xFF
        path.write_bytes(bytes(raw))
    from weft.errors import BlobError

    with pytest.raises(BlobError, match="corrupt"):
        result.stdout_bytes  # noqa: B018 - reading is the test
    proc = _weft(project, "result", result.tid)
    assert proc.returncode != 0 and b"corrupt" in proc.stderr and b"Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_50_mb_result_and_200_mb_of_output_keep_memory_bounded(project, client, manager,
                                                                payload_jobs):
    result = client.run(function="payload_jobs:big_string", args=[50_000_000], wait_timeout=300)
    assert len(result.value) == 50_000_000
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "weft.cli.main", "run", "--json",
         "--", "head", "-c", "200000000", "/dev/zero"],
        cwd=project.root, env=project.env, stdin=subprocess.DEVNULL, capture_output=True,
        timeout=600)
    assert proc.returncode == 0
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    assert peak_kb < 100 * 1024, f"client peaked at {peak_kb} KB"
    assert pid_alive(manager.pid)


def test_output_waiting_for_a_blob_is_shown_while_the_task_still_runs(project, client, manager):
    task = client.submit(command=["sh", "-c", "head -c 1500000 /dev/zero; sleep 60"])
    seen = 0
    try:
        for chunk in task.output(timeout=20):
            seen += len(chunk["data"])
            if seen == 1_500_000:
                break
        assert seen == 1_500_000 and not task.done()
    finally:
        task.kill()
