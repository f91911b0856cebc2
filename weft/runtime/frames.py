"""Length-prefixed JSON frames over a stream socket.

The manager and its launcher (the supervisor process) talk over one
socketpair. Frames are ``4-byte big-endian length + UTF-8 JSON``; both ends
use non-blocking sockets and buffer partial frames, so a slow peer never
stalls the other's loop.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


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

    def send(self, obj: Any) -> None:
        data = json.dumps(obj, separators=(",", ":")).encode()
        self._wbuf += _HEADER.pack(len(data))
        self._wbuf += data
        self.flush()

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
        while True:
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
            if len(chunk) < (1 << 16):
                break
        return self._drain()

    def _drain(self) -> list[Any]:
        frames = []
        while len(self._rbuf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._rbuf)
            if size > MAX_FRAME:
                raise PeerClosed(f"frame too large ({size} bytes)")
            if len(self._rbuf) < _HEADER.size + size:
                break
            body = bytes(self._rbuf[_HEADER.size : _HEADER.size + size])
            del self._rbuf[: _HEADER.size + size]
            frames.append(json.loads(body))
        return frames

    def close(self) -> None:
        self.sock.close()
