"""The write end of one task's stdin pipe, in the launcher.

The launcher never blocks on a task: it writes a task's stdin only when the
pipe has room (the selector says so) and only what it holds, at most one
chunk. A static stdin (a work item) is all there at launch, then EOF; a
streamed one arrives chunk by chunk from the manager, and :meth:`writable`
says when to ask for the next (see :mod:`weft.runtime.stdin_feed`).
"""

from __future__ import annotations

import os
import selectors

WRITE_SIZE = 1 << 16


class StdinPipe:
    def __init__(self, fd: int, sel: selectors.BaseSelector, *, streamed: bool,
                 initial: bytes = b"") -> None:
        os.set_blocking(fd, False)
        self.fd: int | None = fd
        self.sel = sel
        self.buf = bytearray(initial)
        self.eof = not streamed  # True once nothing more will be added
        self.armed = False  # registered with the selector for writing
        self.arm()

    def arm(self) -> None:
        """Ask to be told when the pipe has room, if there is anything (or EOF) to deliver."""
        if self.fd is not None and not self.armed and (self.buf or self.eof):
            self.sel.register(self.fd, selectors.EVENT_WRITE, "stdin")
            self.armed = True

    def add(self, data: bytes | None, *, eof: bool) -> None:
        if self.fd is None:
            return
        if data:
            self.buf += data
        self.eof = self.eof or eof
        self.arm()

    def writable(self) -> bool:
        """Write what the pipe takes; True when the buffer is empty and more is wanted."""
        assert self.fd is not None
        try:
            written = os.write(self.fd, self.buf[:WRITE_SIZE]) if self.buf else 0
            del self.buf[:written]
        except BlockingIOError:
            return False
        except OSError:  # the task closed its stdin: nothing more will be read
            self.buf.clear()
            self.eof = True
        if self.buf:
            return False
        if self.eof:
            self.close()
            return False
        self.sel.unregister(self.fd)
        self.armed = False
        return True

    def close(self) -> None:
        if self.fd is None:
            return
        if self.armed:
            self.sel.unregister(self.fd)
            self.armed = False
        os.close(self.fd)
        self.fd = None
        self.buf.clear()
