"""Bad input everywhere: one clear line, a non-zero exit, nothing queued touched.

Covers CLI arguments, spec files, control messages, environment knobs, a
locked and a corrupt broker file, and property tests of TaskSpec and
control-message parsing.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weft.errors import InvalidSpec


def _one_line(proc, code):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def seeded(project):
    """An initialised project holding one queued message that must survive."""
    assert project.cli("init").returncode == 0
    assert project.cli("queue", "write", "keep", "precious").returncode == 0
    return project


def _kept(project):
    return project.rows("keep") == [{"_raw": "precious"}]


@pytest.mark.parametrize("args", [
    ["run", "--retries", "-1", "true"],
    ["run", "--retry-on", "sometimes", "true"],
    ["run", "--delay", "soon", "true"],
    ["run", "--function", "no_colon"],
    ["run", "--env", "NOEQUALS", "true"],
    ["run", "--priority", "5000", "true"],
    ["worker", "start", "--grace", "-3"],
    ["task", "status", "12"],
    ["queue"],
    ["tidy", "--retention", "-1"],
])
def test_bad_arguments(seeded, args):
    _one_line(seeded.cli(*args), 2)
    assert _kept(seeded) and seeded.rows("weft.spawn.requests") == []


@pytest.mark.parametrize(("content", "needle"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({"command": ["true"], "timeout": "soon"}), "timeout"),
    (json.dumps({"command": []}), "command"),
    (json.dumps({"function": "x"}), "function"),
    (json.dumps({"command": ["true"], "retry": {"retry_on": ["never"]}}), "retry"),
])
def test_bad_spec_files(seeded, content, needle):
    spec = seeded.root / "spec.json"
    spec.write_text(content)
    assert needle in _one_line(seeded.cli("run", "--spec", str(spec)), 2)
    assert seeded.rows("weft.spawn.requests") == [] and _kept(seeded)


def test_missing_spec_file(seeded):
    assert "cannot read" in _one_line(seeded.cli("run", "--spec", "nope.json"), 2)


@pytest.mark.parametrize(("name", "value", "args"), [
    ("WEFT_MANAGER_IDLE_TIMEOUT", "abc", ["run", "true"]),
    ("WEFT_HEARTBEAT_INTERVAL", "-1", ["worker", "start"]),
    ("WEFT_SYNC_MODE", "sometimes", ["queue", "list"]),
    ("WEFT_BUSY_TIMEOUT_MS", "1.5x", ["status"]),
    ("WEFT_LOCK_TIMEOUT", "0", ["queue", "write", "keep", "x"]),
])
def test_bad_environment_knobs(seeded, name, value, args):
    line = _one_line(seeded.cli(*args, env={name: value}), 2)
    assert name in line
    assert _kept(seeded) and seeded.rows("weft.spawn.requests") == []


def test_locked_broker_is_one_line_and_touches_nothing(seeded):
    con = sqlite3.connect(seeded.root / ".weft" / "broker.db", isolation_level=None, timeout=1)
    try:
        con.execute("BEGIN EXCLUSIVE")
        env = {"WEFT_LOCK_TIMEOUT": "0.5", "WEFT_BUSY_TIMEOUT_MS": "50"}
        for args in (["queue", "write", "keep", "more"], ["run", "--no-wait", "true"]):
            assert "locked" in _one_line(seeded.cli(*args, env=env), 3)
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert _kept(seeded) and seeded.rows("weft.spawn.requests") == []


def test_corrupt_broker_is_one_line_and_the_file_is_left_alone(seeded):
    db = seeded.root / ".weft" / "broker.db"
    for extra in ("-wal", "-shm"):
        (db.parent / (db.name + extra)).unlink(missing_ok=True)
    garbage = bytes(range(256)) * 64
    db.write_bytes(garbage)
    for args in (["status"], ["run", "true"], ["queue", "peek", "keep"], ["tidy"]):
        assert "corrupt" in _one_line(seeded.cli(*args), 3)
    assert db.read_bytes() == garbage


# -- control messages on a live task and a live manager ------------------------

def test_malformed_and_unknown_control_messages_get_error_replies(project, client, manager):
    from conftest import wait_for

    task = client.submit(command=["sleep", "30"])
    wait_for(lambda: task.status()["status"] == "running", what="task running")
    for target in (task.tid, manager.tid):
        ctrl_in, ctrl_out = f"T{target}.ctrl_in", f"T{target}.ctrl_out"
        for body in ("{not json", json.dumps({"command": "DANCE", "request_id": "r1"}),
                     json.dumps({"command": 7}), "[]", '"ping"'):
            client.broker.write(ctrl_in, body)
        replies = wait_for(lambda q=ctrl_out: len(project.rows(q)) >= 5 and project.rows(q),
                           what=f"5 replies from {target}")
        assert [r["ok"] for r in replies] == [False, False, False, False, True]
        assert "unknown command 'DANCE'" in replies[1]["error"]
        assert replies[1]["request_id"] == "r1"
        assert replies[4]["reply"] == "PONG"
        client.broker.delete_queue(ctrl_out)
    assert task.ping()["reply"] == "PONG"
    assert task.status()["status"] == "running"
    task.kill()


# -- properties -------------------------------------------------------------

class _Probe:
    """A BaseTask with inert handlers, to exercise parsing alone."""

    def __new__(cls):
        from weft.runtime.basetask import BaseTask

        class Probe(BaseTask):
            def on_stop(self, reason):
                return "stopping"

            on_kill = on_pause = on_resume = on_stop

        return Probe("1" * 19, name="probe", batch=None)  # type: ignore[arg-type]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), json_values.map(json.dumps),
                 st.dictionaries(st.sampled_from(["command", "request_id", "reason", "v", "x"]),
                                 json_values).map(json.dumps)))
def test_handle_control_never_raises(body):
    reply = _Probe().handle_control(body)
    assert set(reply) >= {"ok", "tid", "status", "request_id", "error"}
    json.dumps(reply)
    if not reply["ok"]:
        assert reply["error"]


def test_handle_control_survives_deep_nesting():
    assert _Probe().handle_control("[" * 100_000)["ok"] is False


spec_pieces = st.fixed_dictionaries({}, optional={
    "command": st.one_of(st.lists(st.text(), max_size=3), st.text(), st.integers()),
    "function": st.one_of(st.text(), st.sampled_from(["a:b", "pkg.mod:fn", "x", ":"])),
    "timeout": st.one_of(st.floats(), st.integers(), st.text()),
    "priority": st.one_of(st.integers(), st.text()),
    "env": st.dictionaries(st.text(), st.one_of(st.text(), st.integers()), max_size=3),
    "resources": st.one_of(json_values, st.fixed_dictionaries({}, optional={
        "cpus": st.floats(), "memory_mb": st.integers(), "gpus": st.integers(),
        "vram_mb": st.integers()})),
    "retry": st.one_of(json_values, st.fixed_dictionaries({}, optional={
        "retries": st.integers(), "delay": st.floats(), "backoff": st.floats(),
        "retry_on": st.lists(st.text(), max_size=3)})),
    "bogus": json_values,
})


@settings(max_examples=300, deadline=None)
@given(spec_pieces)
def test_taskspec_validation_only_ever_raises_invalid_spec(pieces):
    from weft.client.specs import build_spec

    try:
        spec = build_spec(spec=pieces)
    except InvalidSpec as exc:
        assert str(exc).startswith("invalid task spec:") and "\n" not in str(exc)
        return
    assert (spec.command is None) != (spec.function is None)
    assert "bogus" not in pieces


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), json_values.map(json.dumps),
                 spec_pieces.map(lambda s: json.dumps({"taskspec": s}, default=str))))
def test_spawn_request_parsing_only_ever_raises_value_error(body):
    from weft.runtime.intake import parse

    try:
        cand = parse(body, 1795000000000000000)
    except ValueError as exc:
        assert str(exc)
        return
    assert cand.tid and cand.spec.tid == cand.tid
