"""The CLI's pydantic-free submit path agrees with the validated one.

``weft run`` checks a task with :func:`weft.client.fields.checked_fields`
(the TaskSpec rules as plain functions) and writes the spawn request as
plain JSON; the Python API validates with pydantic. Both must accept the
same tasks, refuse the same tasks, and queue the same request.
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weft.client.fields import checked_fields
from weft.client.specs import build_spec
from weft.errors import InvalidSpec
from weft.models import SpawnRequest, TaskSpec
from weft.models.rules import RETRYABLE
from weft.names import SPAWN_REQUESTS

# What click can hand over: each flag already of its type and within its
# declared range (see weft/cli/run.py), everything else free.
words = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                      words)
identifier = st.text(string.ascii_letters + "_", min_size=1, max_size=6)
functions = st.one_of(
    st.builds(lambda m, f: f"{m}:{f}", identifier, identifier),
    words,
)
near_limit = st.text("ab", min_size=198, max_size=202)  # the 200-character bound
flag_pieces = st.fixed_dictionaries({}, optional={
    "name": st.one_of(words, near_limit),
    "request_id": st.one_of(words.filter(bool), near_limit),
    "env": st.dictionaries(st.text(max_size=5), words, max_size=3),
    "labels": st.dictionaries(words, words, max_size=2),
    "cwd": st.sampled_from(["/tmp", "/"]),
    "timeout": st.floats(min_value=0.001, max_value=1e6),
    "priority": st.integers(-1000, 1000),
    "resources": st.fixed_dictionaries({}, optional={
        "cpus": st.floats(0, 64), "memory_mb": st.integers(0, 10**6),
        "gpus": st.integers(0, 8), "vram_mb": st.integers(0, 10**5)}),
    "retry": st.fixed_dictionaries({}, optional={
        "retries": st.integers(0, 100), "delay": st.floats(0, 100),
        "backoff": st.floats(1, 10),
        "retry_on": st.lists(st.sampled_from([*RETRYABLE, "sometimes", ""]), max_size=3)}),
})
targets = st.one_of(
    st.fixed_dictionaries({"command": st.lists(st.one_of(words, st.just("a\x00b")), max_size=3)},
                          optional={"shell": st.booleans()}),
    st.fixed_dictionaries({"function": functions},
                          optional={"args": st.lists(json_leaf, max_size=3),
                                    "kwargs": st.dictionaries(identifier, json_leaf, max_size=2)}),
)


def _verdict(build, pieces):
    try:
        return build(**pieces)
    except InvalidSpec as exc:
        assert str(exc).startswith("invalid task spec:") and "\n" not in str(exc)
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(targets, flag_pieces, st.one_of(st.none(), st.just("1795353836448690176"),
                                       st.just("not-a-tid")))
def test_flags_checked_without_pydantic_get_the_validated_verdict(target, flags, parent):
    pieces = {**target, **flags}
    if "request_id" not in pieces:
        pieces["request_id"] = "req-fixed"  # both paths would otherwise draw a fresh uuid
    saved = os.environ.pop("WEFT_TASK_TID", None)
    try:
        if parent is not None:
            os.environ["WEFT_TASK_TID"] = parent  # the task this one is submitted from
        light = _verdict(checked_fields, pieces)
        full = _verdict(build_spec, pieces)
    finally:
        os.environ.pop("WEFT_TASK_TID", None)
        if saved is not None:
            os.environ["WEFT_TASK_TID"] = saved
    assert (light is None) == (full is None), (light, full)
    if light is not None:
        assert TaskSpec.model_validate(light) == full


def test_both_paths_queue_the_same_spawn_request(client):
    pieces = {"command": ["echo", "hi"], "name": "n", "env": {"A": "1"}, "timeout": 5.0,
              "resources": {"cpus": 0.5}, "retry": {"retries": 2, "retry_on": ["failed"]},
              "request_id": "req-1", "priority": 3}
    client.auto_start = False
    light = client.submit_fields(checked_fields(**pieces))
    full = client.submit_spec(build_spec(**pieces))
    bodies = {mid: body for body, mid in client.broker.peek_all(SPAWN_REQUESTS)}
    requests = [SpawnRequest.model_validate_json(bodies[int(t.tid)]) for t in (light, full)]
    assert requests[0] == requests[1]
    assert json.loads(bodies[int(light.tid)])["v"] == 1


def test_weft_run_does_not_import_pydantic(project, manager):
    """The point of the plain path: a short ``weft run`` never loads pydantic."""
    code = ("import sys; from weft.cli.main import main\n"
            "try:\n    main(['run', 'echo', 'ran'])\n"
            "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "print('pydantic loaded:', 'pydantic' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=project.root, env=project.env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["ran", "pydantic loaded: False"], proc.stdout
