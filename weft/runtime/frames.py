"""Length-prefixed JSON frames, with an optional raw byte payload, over a stream socket.

The manager and its launcher (the supervisor process) talk over one
socketpair. A frame is ``4-byte JSON length + 4-byte payload length (both
big-endian) + UTF-8 JSON + payload bytes``. A frame whose ``"d"`` is
``bytes`` (a task's output, a piece of its stdin) sends them as the raw
payload, so bytes cross the socket as they are, with no text encoding to
lose or inflate them; the receiver puts them back under ``"d"``. Both ends
use non-blocking sockets and buffer partial frames, so a slow peer never
stalls the other's loop.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

_HEADER = struct.Struct(">II")
# A guard against a corrupt length, not a payload limit: results are capped
# by WEFT_MAX_RESULT_MB before they are framed.
MAX_FRAME = 1 << 31
RECEIVE_BUDGET = 4 << 20  # bytes read per receive(): a fast peer cannot grow our buffer


class PeerClosed(Exception):
    """The other end of the socket is gone."""


class FrameSocket:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self._rbuf = bytearray()
        self._wbuf = bytearray()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, obj: Any, *, flush: bool = True) -> None:
        """Queue one frame; with ``flush`` (the default) also try to write it out now.

        Callers that send several frames in one loop turn pass ``flush=False``
        and :meth:`flush` once: one syscall, and one wake-up of the peer, per turn.
        """
        raw = b""
        if isinstance(obj, dict) and isinstance(obj.get("d"), bytes | bytearray):
            raw = bytes(obj["d"])
            obj = {k: v for k, v in obj.items() if k != "d"}
        data = json.dumps(obj, separators=(",", ":")).encode()
        self._wbuf += _HEADER.pack(len(data), len(raw))
        self._wbuf += data
        self._wbuf += raw
        if flush:
            self.flush()

    @property
    def pending_bytes(self) -> int:
        return len(self._wbuf)

    @property
    def wants_write(self) -> bool:
        return bool(self._wbuf)

    def flush(self) -> None:
        while self._wbuf:
            try:
                sent = self.sock.send(self._wbuf)
            except (BlockingIOError, InterruptedError):
                return
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise PeerClosed(str(exc)) from None
            del self._wbuf[:sent]

    def flush_blocking(self, timeout: float = 5.0) -> None:
        """Push everything out (used before exit)."""
        import selectors
        import time

        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_WRITE)
            while self._wbuf and time.monotonic() < deadline:
                sel.select(max(0.0, deadline - time.monotonic()))
                self.flush()

    def receive(self) -> list[Any]:
        """Read what is available; return complete frames. Raises PeerClosed on EOF."""
        budget = RECEIVE_BUDGET
        while budget > 0:
            try:
                chunk = self.sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionResetError:
                raise PeerClosed("reset") from None
            if not chunk:
                frames = self._drain()
                if frames:
                    return frames
                raise PeerClosed("eof")
            self._rbuf += chunk
            budget -= len(chunk)
            if len(chunk) < (1 << 16):
                break
        return self._drain()

    def _drain(self) -> list[Any]:
        frames = []
        while len(self._rbuf) >= _HEADER.size:
            size, raw_size = _HEADER.unpack_from(self._rbuf)
            if size + raw_size > MAX_FRAME:
                raise PeerClosed(f"frame too large ({size + raw_size} bytes)")
            end = _HEADER.size + size + raw_size
            if len(self._rbuf) < end:
                break
            frame = json.loads(bytes(self._rbuf[_HEADER.size : _HEADER.size + size]))
            if raw_size:
                frame["d"] = bytes(self._rbuf[_HEADER.size + size : end])
            del self._rbuf[:end]
            frames.append(frame)
        return frames

    def close(self) -> None:
        self.sock.close()
