"""Anything written straight into ``weft.spawn.requests`` ends one way, and the manager lives.

Hypothesis writes arbitrary JSON, JSON nested thousands deep, huge strings,
non-JSON text and well-formed requests with one field of the wrong type into
the spawn queue of one real manager. Each request must end in exactly one
terminal state a client can wait on (a result on ``T{tid}.outbox`` and one
final event), and afterwards the manager must still answer a real PING.
"""

from __future__ import annotations

import json
from typing import Any

from conftest import wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weft.models import TERMINAL
from weft.names import SPAWN_REQUESTS

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(
    max_size=20)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
# Values of a type no scalar field coerces from: a wrong type that stays wrong.
WRONG = (st.lists(st.integers(), min_size=1, max_size=3)
         | st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=2)
         | st.integers(min_value=-5, max_value=5) | st.text(max_size=30))
SPEC_FIELDS = ["tid", "name", "labels", "parent_tid", "request_id", "command", "shell",
               "function", "args", "kwargs", "env", "cwd", "timeout", "resources", "limits",
               "retry", "priority", "stream_output", "v"]
# not_before takes no numbers here: a far-future time is a valid (and very long) wait.
TOP_WRONG = {"request_id": WRONG, "attempt": WRONG, "v": WRONG, "inbox_message": JSON,
             "not_before": st.lists(st.integers(), min_size=1) | st.dictionaries(
                 st.text(max_size=3), st.integers(), min_size=1)}


def _request(spec: dict[str, Any], **top: Any) -> str:
    return json.dumps({"v": 1, "taskspec": {"command": ["true"], **spec}, **top})


@st.composite
def wrong_field(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        field = draw(st.sampled_from(SPEC_FIELDS))
        value = draw(WRONG)
        if field in ("command", "function"):
            value = draw(st.integers() | st.lists(st.integers(), min_size=1))  # never runnable
        return _request({field: value})
    field = draw(st.sampled_from(sorted(TOP_WRONG)))
    return _request({}, **{field: draw(TOP_WRONG[field])})


def _nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "dict":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"taskspec":' * depth + "{}" + "}" * depth


BODIES = st.one_of(
    JSON.map(json.dumps),
    st.text(max_size=200),
    st.builds(_nested, st.integers(500, 5000), st.sampled_from(["list", "dict", "spec"])),
    st.builds(lambda n, where: (_request({}, request_id="r" * n) if where == "request_id"
                                else _request({"name": "n" * n}) if where == "name"
                                else "x" * n),
              st.integers(100_000, 1_500_000), st.sampled_from(["request_id", "name", "raw"])),
    wrong_field(),
)


def _terminal_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("status") in TERMINAL]


def test_fuzzed_spawn_requests_each_end_once_and_the_manager_answers(project, client, manager):
    tids: list[str] = []

    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(st.lists(BODIES, min_size=1, max_size=3))
    def write_and_wait(bodies: list[str]) -> None:
        batch = [str(client.broker.write(SPAWN_REQUESTS, body)).zfill(19) for body in bodies]
        for tid in batch:
            result = client.task(tid).wait(timeout=30)
            assert result.status in {s.value for s in TERMINAL}, result
        tids.extend(batch)

    write_and_wait()
    reply = client.task(manager.tid).ping(timeout=15)
    assert reply["reply"] == "PONG" and reply["pid"] == manager.pid
    for tid in tids:
        results = [body for body, _ in client.broker.peek_all(f"T{tid}.outbox")
                   if json.loads(body).get("type") == "result"]
        assert len(results) == 1, (tid, results)
        ended = wait_for(lambda t=tid: _terminal_events(client.task(t).events()),
                         what=f"the final event of {tid}")
        assert len(ended) == 1, (tid, ended)
    assert client.broker.count(SPAWN_REQUESTS) == 0
    assert client.broker.count(f"T{manager.tid}.reserved") == 0
