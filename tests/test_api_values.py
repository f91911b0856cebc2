"""Python objects through the Python API (issue 12, item 4): arguments and
results of any picklable type round-trip exactly; JSON stays the wire
format where it can; bad values are InvalidSpec naming the field; and
``WEFT_ALLOW_PICKLE=0`` turns pickle off, on the client and on the manager.
"""

from __future__ import annotations

import datetime
import json
import textwrap

import numpy as np
import pytest

from weft import InvalidSpec, TaskFailed
from weft.models import values
from weft.names import SPAWN_REQUESTS

VALUES_MODULE = '''
import dataclasses
import numpy as np


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: float


class Odd(Exception):
    def __init__(self, code, detail):
        super().__init__(code, detail)
        self.code = code


def echo(*args, **kwargs):
    return [list(args), kwargs, [type(a).__name__ for a in args]]


def array(n):
    return np.arange(n, dtype=np.float64)


def scalar():
    return np.int64(7)


def raw(n):
    return bytes(range(256)) * n


def raise_odd():
    raise Odd(42, "detail")


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no")


def raise_unpicklable():
    raise Unpicklable("plain text survives")


def return_lock():
    import threading
    return threading.Lock()
'''


@pytest.fixture
def vals(project):
    pkg = project.root / "valpkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "vals.py").write_text(textwrap.dedent(VALUES_MODULE))
    import importlib
    import sys

    sys.path.insert(0, str(project.root))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module("valpkg.vals")
    finally:
        sys.path.remove(str(project.root))
        for name in ("valpkg.vals", "valpkg"):
            sys.modules.pop(name, None)


# -- the codec alone -------------------------------------------------------------
@pytest.mark.parametrize("value", [
    b"\x00\xff", (1, (2, 3)), {1, 2}, frozenset({"a"}), datetime.datetime(2026, 1, 2, 3, 4, 5),
    {1: "int key"}, {"$pickle": "a user dict with the reserved key"}, float("inf"),
    [1, (2,)], complex(1, 2),
])
def test_values_that_json_cannot_carry_are_pickled_and_come_back_equal(value):
    encoded = values.encode(value)
    assert values.is_pickled(encoded)
    json.dumps(encoded)  # the envelope is itself JSON
    back = values.decode(json.loads(json.dumps(encoded)))
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("value", [None, True, 3, 2.5, "s", [1, "a"], {"k": [None, {"n": 1.0}]}])
def test_plain_json_stays_plain(value):
    assert values.encode(value) == value
    assert values.encode(value, serializer="pickle") != value  # asked for: pickled anyway


def test_bad_values_are_invalid_spec_naming_the_field():
    with pytest.raises(InvalidSpec, match=r"args\[0\]: a numpy.ndarray is not plain JSON"):
        values.encode_call([np.arange(3)], {}, serializer="json")
    with pytest.raises(InvalidSpec, match=r"kwargs\['k'\]: a bytes needs pickle, but pickle is turned off"):
        values.encode_call([], {"k": b"x"}, allow_pickle=False)
    import threading

    with pytest.raises(InvalidSpec, match=r"args\[1\]: cannot pickle a _thread.lock"):
        values.encode_call([1, threading.Lock()], {})
    with pytest.raises(InvalidSpec, match="serializer: must be one of"):
        values.encode_call([], {}, serializer="yaml")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [b"\x00" * 1000, {"plain": [1, 2.5]}, np.arange(5)])
def test_a_blob_transport_gets_raw_bytes_and_back(value):
    kind, data = values.to_bytes(values.encode(value))
    assert kind == ("json" if values.is_plain(value) else "pickle")
    back = values.decode(values.from_bytes(kind, data))
    assert back == value if not isinstance(value, np.ndarray) else np.array_equal(back, value)


# -- end to end through a real manager and task process -----------------------------
def test_arguments_and_results_round_trip_exactly(client, vals):
    when = datetime.datetime(2026, 12, 3, 16, 0, tzinfo=datetime.UTC)
    point = vals.Point(1, 2.5)
    args = (b"\x00\xff", (1, 2), {3, 4}, when, point, np.arange(4))
    res = client.run(function=vals.echo, args=args, kwargs={"t": (1,), "plain": [1]},
                     wait_timeout=60)
    got_args, got_kwargs, kinds = res.value
    assert kinds == ["bytes", "tuple", "set", "datetime", "Point", "ndarray"]
    assert got_args[:5] == list(args[:5]) and np.array_equal(got_args[5], args[5])
    assert got_kwargs == {"t": (1,), "plain": [1]}
    assert client.run(function=vals.raw, args=[4], wait_timeout=60).value == bytes(range(256)) * 4
    array = client.run(function=vals.array, args=[1000], wait_timeout=60).value
    assert array.dtype == np.float64 and np.array_equal(array, np.arange(1000.0))
    scalar = client.run(function=vals.scalar, wait_timeout=60).value
    assert scalar == 7 and type(scalar) is np.int64


def test_plain_values_stay_plain_json_on_the_wire(project, client, vals):
    task = client.submit(function=vals.echo, args=[1, "a"], kwargs={"k": [2]})
    task.result(timeout=60)
    [request] = [r for r in project.rows(f"T{task.tid}.outbox") if r.get("type") == "result"]
    assert request["value"] == [[1, "a"], {"k": [2]}, ["int", "str"]]


def test_raised_exception_comes_back_with_its_type(client, vals):
    with pytest.raises(TaskFailed) as info:
        client.run(function=vals.raise_odd, wait_timeout=60)
    exc = info.value.result.exception
    assert type(exc) is vals.Odd and exc.code == 42 and "raise Odd" in info.value.traceback
    with pytest.raises(TaskFailed) as info:
        client.run(function=vals.raise_unpicklable, wait_timeout=60)
    assert info.value.result.exception is None
    assert "plain text survives" in info.value.error


def test_a_result_that_cannot_be_sent_fails_the_task_with_a_clear_error(client, vals):
    with pytest.raises(TaskFailed, match="cannot send the result: the return value: cannot pickle"):
        client.run(function=vals.return_lock, wait_timeout=60)


def test_serializer_json_keeps_the_cli_contract(client, vals):
    with pytest.raises(InvalidSpec, match=r"args\[0\]: a bytes is not plain JSON"):
        client.submit(function=vals.echo, args=[b"x"], serializer="json")
    with pytest.raises(TaskFailed, match="not JSON-serialisable"):
        client.run(function=vals.raw, args=[1], serializer="json", wait_timeout=60)
    assert client.broker.count(SPAWN_REQUESTS) == 0


def test_pickle_off_is_refused_by_client_and_by_manager(project, client, vals, monkeypatch):
    monkeypatch.setenv("WEFT_ALLOW_PICKLE", "0")
    from weft.client.client import WeftClient

    with WeftClient(project.root) as strict:
        with pytest.raises(InvalidSpec, match=r"args\[0\]: a bytes needs pickle, but pickle is "
                                              r"turned off .*WEFT_ALLOW_PICKLE=0"):
            strict.submit(function=vals.echo, args=[b"x"])
        assert strict.run(function=vals.echo, args=[1], wait_timeout=60).value[0] == [1]
        # A request that asks for pickle anyway (another client) is refused by the manager.
        task = strict.submit(function=vals.echo, args=[1], serializer="json")
        task.result(timeout=60)
        forced = strict.submit_spec(strict.build_spec(function="valpkg.vals:echo",
                                                      serializer="pickle"))
        res = forced.wait(timeout=60)
    assert res.status == "rejected" and res.reason == "pickle_refused"
    assert "WEFT_ALLOW_PICKLE=0" in (res.error or "")



def test_a_hand_built_spec_with_a_python_value_is_invalid_spec_not_a_raw_error(client):
    spec = client.build_spec(function="valpkg.vals:echo", args=[np.arange(2)])
    with pytest.raises(InvalidSpec, match="task spec: a value is not JSON"):
        client.submit_spec(spec)
    assert client.broker.count(SPAWN_REQUESTS) == 0


def test_the_cli_shows_a_pickled_result_without_a_traceback(project, client, vals):
    task = client.submit(function=vals.raw, args=[1])
    task.result(timeout=60)
    shown = project.cli("result", task.tid)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert shown.stdout.startswith("b'\\x00\\x01\\x02")
    raw = json.loads(project.cli("result", "--json", task.tid).stdout)
    assert values.decode(raw["value"]) == bytes(range(256))
