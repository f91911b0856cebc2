"""The pieces that carry bytes, alone: encoding in messages, frames, the output
spool, the capped result pipe and the streamed JSON writer. No processes."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import socket

import pytest

from weft.errors import BlobError
from weft.models.payload import decode_bytes, encode_bytes
from weft.runtime.frames import FrameSocket
from weft.runtime.result_pipe import ResultPipe
from weft.runtime.spool import OutputSpool

NOISE = random.Random(12).randbytes(4096)  # fixed: xdist workers must collect the same ids


@pytest.mark.parametrize("data", [b"", b"plain text\n", "h\u00e9llo \u2603".encode(),
                                  b"a\xff\xfeb", NOISE])
def test_bytes_survive_a_json_message(data):
    fields = encode_bytes(data)
    assert decode_bytes(json.loads(json.dumps(fields))) == data
    assert ("encoding" in fields) == (fields["data"].encode() != data)


def test_frames_carry_raw_bytes_split_anywhere():
    ours, theirs = socket.socketpair()
    sender, receiver = FrameSocket(ours), FrameSocket(theirs)
    payload = os.urandom(200_000)
    sender.send({"ev": "out", "tid": "1", "s": "stdout", "d": payload})
    sender.send({"ev": "pong"})
    frames = []
    while len(frames) < 2:
        sender.flush()
        frames += receiver.receive()
    assert frames == [{"ev": "out", "tid": "1", "s": "stdout", "d": payload}, {"ev": "pong"}]
    sender.close()
    receiver.close()


class MemoryStore:
    def __init__(self, fail: bool = False) -> None:
        self.blobs: dict[str, bytes] = {}
        self.fail = fail

    def put(self, data: bytes) -> dict:
        if self.fail:
            raise BlobError("disk full")
        sha = hashlib.sha256(data).hexdigest()
        self.blobs[sha] = data
        return {"sha256": sha, "size": len(data)}


def _replay(pieces, store):
    out = []
    for stream, fields in pieces:
        data = store.blobs[fields["blob"]["sha256"]] if "blob" in fields else decode_bytes(fields)
        out.append((stream, data))
    return out


def test_spool_inlines_the_first_chunk_then_writes_blobs_of_at_most_a_chunk():
    store = MemoryStore()
    spool = OutputSpool(lambda: store, chunk=100_000, linger=3600)
    data = os.urandom(350_000)
    pieces = []
    for start in range(0, len(data), 65_536):
        pieces += spool.add("stdout", data[start : start + 65_536])
    pieces += spool.flush()
    assert b"".join(d for _, d in _replay(pieces, store)) == data
    kinds = ["blob" if "blob" in f else "inline" for _, f in pieces]
    assert kinds[0] == "inline" and "blob" in kinds
    assert all(len(store.blobs[f["blob"]["sha256"]]) <= 100_000 for _, f in pieces if "blob" in f)


def test_spool_keeps_the_order_of_the_two_streams():
    store = MemoryStore()
    spool = OutputSpool(lambda: store, chunk=70_000, linger=3600)
    writes = [("stdout", b"a" * 65_536), ("stdout", b"b" * 65_536), ("stderr", b"c" * 10),
              ("stdout", b"d" * 70_000)]
    pieces = [p for stream, data in writes for p in spool.add(stream, data)] + spool.flush()
    replayed = _replay(pieces, store)
    assert [s for s, _ in replayed if _] == ["stdout", "stdout", "stderr", "stdout"]
    assert b"".join(d for _, d in replayed) == b"".join(d for _, d in writes)


def test_spool_falls_back_to_inline_when_the_store_fails():
    spool = OutputSpool(lambda: MemoryStore(fail=True), chunk=65_536, linger=3600)
    pieces = spool.add("stdout", b"x" * 65_536) + spool.add("stdout", b"y" * 65_536)
    pieces += spool.flush()
    assert all("blob" not in f for _, f in pieces)
    assert b"".join(decode_bytes(f) for _, f in pieces) == b"x" * 65_536 + b"y" * 65_536


def test_result_pipe_caps_and_names_the_reason():
    pipe = ResultPipe(1000)
    pipe.add(b'{"value": "' + b"x" * 2000 + b'"}\n')
    assert pipe.outcome()["reason"] == "result_too_large"
    ok = ResultPipe(1000)
    ok.add(b'{"value": 1}\n')
    assert ok.outcome() == {"value": 1}


@pytest.mark.parametrize("data", ["h\u00e9llo \u2603 wörld".encode() * 50, NOISE[:1000]])
def test_json_string_is_written_in_pieces_losslessly(data):
    from weft.client.payloads import write_json_string

    def pieces():  # odd sizes: multibyte characters and base64 groups split across pieces
        return (data[i : i + 7] for i in range(0, len(data), 7))

    out = io.StringIO()
    encoding = write_json_string(pieces(), pieces(), out)
    text = json.loads(out.getvalue())
    assert (text.encode() if encoding == "utf-8" else base64.b64decode(text)) == data
