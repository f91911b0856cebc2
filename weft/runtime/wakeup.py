"""How long to wait between looks at the broker, and what can end a wait early.

SQLite has no push notification, but ``PRAGMA data_version`` is a cheap
"did anyone commit?" check. Right after activity we look again almost at
once (a short busy burst: the next message usually follows quickly), then
back off geometrically to a cap, and to a longer cap after a long idle.

On Linux a :class:`ChangeSignal` makes the long waits free: every commit
to a SQLite broker writes its ``-wal`` file, and inotify on the broker's
directory turns that write into a readable file descriptor, so a waiter
blocks on it (with the launcher's pipe, in a manager) instead of looking
20 times a second, and wakes within a fraction of a millisecond of any
process's commit. The write lands a moment before the commit is visible
(SQLite updates its WAL index just after), so a signal that finds nothing
new is followed by the short burst again. On PostgreSQL the signal is the
broker's LISTEN socket (:class:`FeedSignal`), readable when a NOTIFY
arrives. Where there is neither (not Linux, the per-user inotify instance
limit reached, the LISTEN connection away) waiting falls back to the looks
alone; with a signal the looks are only a safety net, at :data:`SIGNAL_CAP`.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BURST = 0.0005
CAP = 0.005
IDLE_AFTER = 10.0
IDLE_CAP = 0.05
# With a change signal an idle waiter needs no looks to see a commit; it still
# wakes this often for its own timers (heartbeat, a delayed task coming due).
SIGNAL_CAP = 0.25
# How long after a wake the short burst lasts (a commit follows its WAL write
# within microseconds; a slow disk with synchronous=FULL may take longer).
SIGNAL_BURST = 0.05
# After a change was seen, the signal is accounted for; two more looks still
# cover a second commit whose write woke us a moment before it was visible.
SEEN_LOOKS = (0.0005, 0.005)

_IN_MODIFY, _IN_CREATE, _IN_MOVED_TO = 0x2, 0x100, 0x80
_libc: Any = None


class ChangeSignal:
    """A descriptor that becomes readable when a file in the broker's directory is written."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def for_broker(cls, broker: Any, *, untimed: bool = False) -> ChangeSignal | None:
        """One for ``broker`` (a weft Broker), or None where it cannot be had.

        ``untimed`` (a manager): on PostgreSQL, turn off the change counter's
        twice-a-second tick, which stands in for deletes and claims (they send
        no NOTIFY); a manager dispatches on writes and moves only.
        """
        backend = getattr(broker, "backend", None)
        if backend == "postgres":
            signal = FeedSignal.of(broker.change_feed())
            if signal is not None and untimed:
                signal.feed.ticks = False
            return signal
        if backend != "sqlite":
            return None
        return cls.watch(Path(broker.description).parent)

    @classmethod
    def watch(cls, directory: Path) -> ChangeSignal | None:
        libc = _inotify()
        if libc is None:
            return None
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None  # e.g. the per-user instance limit: wait by looking alone
        if libc.inotify_add_watch(fd, os.fsencode(directory),
                                  _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO) < 0:
            os.close(fd)
            return None
        return cls(fd)

    @staticmethod
    def cheap() -> bool:
        """Can one be had for a few syscalls (inotify already loaded in this process)?"""
        return bool(_libc)

    def fileno(self) -> int:
        return self.fd

    def drain(self) -> bool:
        """Read every pending event; True if there was any."""
        seen = False
        while True:
            try:
                if not os.read(self.fd, 65536):
                    return seen
            except OSError:  # EAGAIN: nothing more pending
                return seen
            seen = True

    def wait(self, timeout: float) -> bool:
        """Block until a change or ``timeout``; True if woken by a change."""
        return _readable(self.fileno(), timeout) and self.drain()

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            finally:
                self.fd = -1


class FeedSignal(ChangeSignal):
    """PostgreSQL: the LISTEN connection's socket, readable when a NOTIFY arrives.

    Its notifications are counted into the feed (so ``data_version`` moves)
    as they are taken. The connection is the broker's, not ours to close; if
    it breaks and is reopened, :meth:`fileno` is the new socket.
    """

    def __init__(self, feed: Any) -> None:
        super().__init__(-1)
        self.feed = feed

    @classmethod
    def of(cls, feed: Any) -> FeedSignal | None:
        if feed is None or feed.fileno() is None:
            return None
        return cls(feed)

    def fileno(self) -> int:
        fd = self.feed.fileno()
        return -1 if fd is None else int(fd)

    def drain(self) -> bool:
        return bool(self.feed.take())

    def wait(self, timeout: float) -> bool:
        fd = self.fileno()
        if fd < 0:
            time.sleep(max(0.0, timeout))
            return False
        return _readable(fd, timeout) and self.drain()

    def close(self) -> None:
        self.feed = _NoFeed()


class _NoFeed:
    def fileno(self) -> None:
        return None

    def take(self) -> bool:
        return False


def _readable(fd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``fd`` to be readable (poll: no 1024-descriptor limit)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    try:
        return bool(poller.poll(max(0.0, timeout) * 1000))
    except (InterruptedError, OSError):
        return False


def _inotify() -> Any:
    """libc with inotify, loaded once; None off Linux or when it cannot be loaded."""
    global _libc
    if _libc is None:
        _libc = False
        if hasattr(os, "O_CLOEXEC") and os.uname().sysname == "Linux":
            try:
                import ctypes

                lib = ctypes.CDLL(None, use_errno=True)
                lib.inotify_init1.argtypes = [ctypes.c_int]
                lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
                _libc = lib
            except (OSError, AttributeError):
                _libc = False
    return _libc or None


class Backoff:
    """The next wait's length. With a ``signal``, the waits after the short
    burst that follows activity are long: the signal, not the looks, sees commits."""

    def __init__(self, *, burst: float = BURST, cap: float = CAP,
                 signal: ChangeSignal | None = None,
                 later: Callable[[], ChangeSignal | None] | None = None) -> None:
        """``later`` opens a signal once the first burst has passed without
        success: a wait that ends at once (most short ones) then never loads
        ctypes (1-2 ms of a short command's start)."""
        self.burst = burst
        self.cap = cap
        self.signal = signal
        self._later = later
        self._born = time.monotonic()
        self._watched = -1
        self._idle = True
        self._signalled = float("-inf")
        self._looks: list[float] = []
        self.reset()

    def reset(self) -> None:
        """Activity: look again soon (without a signal: the next message usually follows)."""
        self._delay = self.burst
        self._since = time.monotonic()
        self.noticed()

    def noticed(self) -> None:
        """A change was seen: the signal that announced it needs no burst of looks."""
        if self._signalled > float("-inf"):
            now = time.monotonic()
            self._signalled = float("-inf")
            self._looks = [now + delay for delay in SEEN_LOOKS]

    def timeout(self, *, idle: bool = True) -> float:
        """The next wait. ``idle`` False (a manager with tasks running): no long signal waits."""
        now = time.monotonic()
        self._idle = idle
        if self._later is not None and now - self._born > SIGNAL_BURST:
            self.signal, self._later = self._later(), None
        if self.signal is not None and idle:
            while self._looks and self._looks[0] <= now:
                self._looks.pop(0)
            if now - self._signalled >= SIGNAL_BURST:
                # the signal will wake us; a seen change leaves two looks to make
                return self._looks.pop(0) - now if self._looks else SIGNAL_CAP
            cap = self.cap  # just signalled, nothing seen: the commit may be a moment away
        else:
            cap = IDLE_CAP if now - self._since > IDLE_AFTER else self.cap
        delay = self._delay
        self._delay = min(cap, self._delay * 1.5)
        return delay

    def sleep(self, pause: float) -> None:
        """Wait ``pause`` seconds, or less when the signal fires."""
        if self.signal is None:
            time.sleep(pause)
        elif self.signal.wait(pause):
            self._signalled_now()

    def _signalled_now(self) -> None:
        self._signalled = time.monotonic()
        self._delay = self.burst

    def watch(self, selector: Any) -> None:
        """Have ``selector`` (a selectors.BaseSelector) also wake on :attr:`signal`
        while idle (again after its descriptor changed: a PostgreSQL feed that
        reconnected). A busy manager is not woken by its own commits: its
        launcher's pipe and the plain back-off pace it, as before."""
        fd = self.signal.fileno() if self.signal is not None and self._idle else -1
        if fd == self._watched:
            return
        import selectors

        if self._watched >= 0:
            try:
                selector.unregister(self._watched)
            except (KeyError, ValueError, OSError):
                pass
        self._watched = -1
        if fd >= 0:
            selector.register(fd, selectors.EVENT_READ)
            self._watched = fd

    def woke(self) -> None:
        """After a select that included :attr:`signal`: take its events; burst if any."""
        if self.signal is not None and self._watched >= 0 and self.signal.drain():
            self._signalled_now()

    def close(self) -> None:
        if self.signal is not None:
            self.signal.close()
            self.signal = None
