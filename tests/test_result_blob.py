"""A function's result as the task process reports it (weft.runtime.result_blob), alone:
inline when small, a blob reference when large, the cap, and the host's admission.
A real file blob store in a temporary directory; no processes."""

from __future__ import annotations

import json
import os
import random
import threading

import numpy as np
import pytest

from weft.broker.blobs import FileBlobStore
from weft.errors import BlobError
from weft.models import TaskState, values
from weft.runtime import result_blob
from weft.runtime.outcome import Outcome, classify

CHUNK = 64 * 1024


def _launch(root, *, serializer="pickle", cap=1 << 30):
    return {"serializer": serializer, "max_result": cap,
            "result_store": {"root": str(root), "backend": "sqlite", "chunk": CHUNK}}


def _store(root):
    return FileBlobStore(root / ".weft" / "blobs")


def _leftovers(root):
    tmp = root / ".weft" / "blobs" / "tmp"
    return sorted(os.listdir(tmp)) if tmp.is_dir() else []


def test_a_small_result_stays_inline_and_touches_no_store(tmp_path):
    line = result_blob.report(b"\x00\xff" * 100, _launch(tmp_path))
    assert values.decode(line["value"]) == b"\x00\xff" * 100
    assert result_blob.report([1, "a"], _launch(tmp_path)) == {"value": [1, "a"]}
    assert not (tmp_path / ".weft").exists()


@pytest.mark.parametrize("value", [random.Random(3).randbytes(3_000_000),
                                   np.arange(400_000, dtype=np.float64), "text " * 100_000],
                         ids=["bytes", "array", "json"])
def test_a_large_result_is_stored_by_the_task_and_only_its_reference_is_reported(tmp_path, value):
    line = result_blob.report(value, _launch(tmp_path))
    assert set(line) == {"value_blob"} and len(json.dumps(line)) < 200  # what crosses the pipe
    ref = line["value_blob"]
    assert result_blob.valid_ref(ref)
    assert ref["encoding"] == ("json" if isinstance(value, str) else "pickle")
    data = _store(tmp_path).read_bytes(ref["sha256"])
    assert len(data) == ref["size"] and ref["size"] > CHUNK
    back = (values.decode(values.RawPickle(data)) if ref["encoding"] == "pickle"
            else json.loads(data))
    assert np.array_equal(back, value) if isinstance(value, np.ndarray) else back == value
    assert _leftovers(tmp_path) == []
    mode = os.stat(_store(tmp_path).root / ref["sha256"][:2] / ref["sha256"]).st_mode
    assert mode & 0o077 == 0  # owner-only


def test_a_result_over_the_cap_is_result_too_large_and_leaves_nothing(tmp_path):
    line = result_blob.report(os.urandom(3_000_000), _launch(tmp_path, cap=1 << 20))
    assert line["reason"] == "result_too_large" and "WEFT_MAX_RESULT_MB" in line["error"]
    assert _leftovers(tmp_path) == [] and _store(tmp_path).usage()["blobs"] == 0
    outcome = classify({"outcome": line, "wait": {"code": 0}})
    assert outcome.state == TaskState.FAILED and outcome.reason == "result_too_large"


def test_a_value_that_cannot_be_sent_is_one_clear_error(tmp_path):
    line = result_blob.report([threading.Lock()], _launch(tmp_path))
    assert line["error"].startswith("cannot send the result: the return value: cannot pickle")
    line = result_blob.report({1, 2}, _launch(tmp_path, serializer="json"))
    assert "not JSON-serialisable" in line["error"]
    nowhere = {**_launch(tmp_path), "result_store": {"root": "", "chunk": CHUNK}}
    line = result_blob.report(os.urandom(200_000), nowhere)  # the store fails: no retry
    assert line == {"error": "cannot store the result: "
                             "the task was launched without its project's blob store"}
    assert _leftovers(tmp_path) == []


def test_the_host_admits_only_a_whole_blob_within_the_cap(tmp_path):
    store = _store(tmp_path)
    ref = {**store.put(b"v" * 5000), "encoding": "pickle"}
    reported = classify({"outcome": {"value_blob": ref}, "wait": {"code": 0}})
    assert reported.state == TaskState.COMPLETED and reported.value_blob == ref
    assert result_blob.admit(reported, lambda: store, 1 << 20) is reported
    too_big = result_blob.admit(reported, lambda: store, 4000)
    assert (too_big.state, too_big.reason) == (TaskState.FAILED, "result_too_large")
    for bad in ({**ref, "sha256": "0" * 64}, {**ref, "size": 4999}, {**ref, "sha256": "../x"},
                {**ref, "encoding": "yaml"}):
        lost = result_blob.admit(Outcome(TaskState.COMPLETED, 0, value_blob=bad), lambda: store,
                                 1 << 20)
        assert (lost.state, lost.reason) == (TaskState.FAILED, "result_lost")
    plain = Outcome(TaskState.COMPLETED, 0, value=1)
    assert result_blob.admit(plain, lambda: store, 1) is plain


def test_read_bytes_checks_the_hash_once_and_refuses_a_changed_blob(tmp_path):
    store = _store(tmp_path)
    ref = store.put(os.urandom(200_000))
    path = store.root / ref["sha256"][:2] / ref["sha256"]
    assert bytes(store.read_bytes(ref["sha256"])) == path.read_bytes()
    path.chmod(0o600)
    with open(path, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"!")
    with pytest.raises(BlobError, match="corrupt"):
        store.read_bytes(ref["sha256"])
    path.unlink()
    with pytest.raises(BlobError, match="missing"):
        store.read_bytes(ref["sha256"])
