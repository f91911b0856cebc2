"""Models: validation names the field; the state table is the contract."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from weft.errors import InvalidSpec
from weft.models import TERMINAL, LogEvent, SpawnRequest, TaskSpec, TaskState, can_transition
from weft.models.states import TRANSITIONS
from weft.settings import Settings


def test_command_or_function_exactly_one():
    TaskSpec(command=["true"])
    TaskSpec(function="pkg.mod:fn", args=[1])
    for bad in ({}, {"command": ["x"], "function": "a:b"}):
        with pytest.raises(ValidationError):
            TaskSpec(**bad)


@pytest.mark.parametrize("field,value", [
    ("command", []), ("function", "no_colon"), ("function", "a:b:c"), ("timeout", 0),
    ("tid", "123"), ("env", {"A=B": "x"}), ("priority", 5000),
])
def test_invalid_values_name_the_field(field, value):
    base = {"command": ["true"]} if field != "command" else {}
    if field == "function":
        base = {}
    with pytest.raises(ValidationError) as err:
        TaskSpec(**{**base, field: value})
    assert field in str(err.value)


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError) as err:
        TaskSpec(command=["true"], colour="blue")
    assert "colour" in str(err.value)
    with pytest.raises(ValidationError):
        SpawnRequest(taskspec={"command": ["true"]}, extra=1)
    with pytest.raises(ValidationError):
        LogEvent(event="x", tid="1", status="queued", ts=0, bogus=1)


def test_spec_is_immutable():
    spec = TaskSpec(command=["true"])
    with pytest.raises(ValidationError):
        spec.name = "x"


def test_shell_needs_single_string_and_vram_needs_gpu():
    with pytest.raises(ValidationError):
        TaskSpec(command=["a", "b"], shell=True)
    with pytest.raises(ValidationError):
        TaskSpec(command=["x"], resources={"vram_mb": 10})
    with pytest.raises(ValidationError):
        TaskSpec(command=["x"], args=[1])


def test_retry_delay_backoff():
    spec = TaskSpec(command=["x"], retry={"retries": 3, "delay": 1.0, "backoff": 2.0})
    assert [spec.retry.delay_before(a) for a in (2, 3, 4)] == [1.0, 2.0, 4.0]
    with pytest.raises(ValidationError):
        TaskSpec(command=["x"], retry={"retry_on": ["sometimes"]})


def test_terminal_states_never_change():
    for state in TERMINAL:
        assert all(not can_transition(state, other) for other in TaskState)


def test_transition_table_is_exhaustive_and_closed():
    assert set(TRANSITIONS) == set(TaskState)
    allowed = {(a, b) for a, b in itertools.product(TaskState, TaskState) if can_transition(a, b)}
    # Every non-terminal state can reach an end; nothing leads back into spawning from running.
    assert (TaskState.RUNNING, TaskState.SPAWNING) not in allowed
    assert (TaskState.QUEUED, TaskState.RUNNING) not in allowed
    assert (TaskState.RUNNING, TaskState.COMPLETED) in allowed
    assert (TaskState.PAUSED, TaskState.RUNNING) in allowed
    for state in set(TaskState) - TERMINAL:
        assert TRANSITIONS[state], state


@pytest.mark.parametrize("name,value", [
    ("WEFT_MANAGER_IDLE_TIMEOUT", "abc"), ("WEFT_MANAGER_IDLE_TIMEOUT", "-1"),
    ("WEFT_SYNC_MODE", "sometimes"), ("WEFT_HEARTBEAT_INTERVAL", "0"),
])
def test_bad_knobs_are_usage_errors(name, value):
    with pytest.raises(InvalidSpec) as err:
        Settings.from_env({name: value})
    assert name in str(err.value)
    assert err.value.exit_code == 2


def test_knob_defaults_and_parsing():
    s = Settings.from_env({"WEFT_MANAGER_IDLE_TIMEOUT": "0", "WEFT_SYNC_MODE": "full"})
    assert s.manager_idle_timeout == 0 and s.sync_mode == "FULL"
    assert Settings.from_env({}).manager_idle_timeout == 600
