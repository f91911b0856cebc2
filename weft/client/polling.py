"""Waiting on the broker without fixed sleeps.

Look, and if nothing is there, wait for the database to change (cheap
``data_version`` checks with a short busy burst, then a capped back-off)
until the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from weft.broker import Broker
from weft.errors import BrokerError, BrokerUnavailable, WaitTimeout
from weft.runtime.wakeup import CAP, Backoff, ChangeSignal

T = TypeVar("T")
FOLLOW_CAP = 0.05  # a human watching a stream does not need 5 ms latency
OUTAGE_RETRY_CAP = 2.0  # seconds between looks while the broker is unreachable
_SHORT_LIVED = False


def poll_until(broker: Broker, check: Callable[[], T | None], *, timeout: float | None,
               what: str, notify: Callable[[str], None] | None = None) -> T:
    """Call ``check`` until it returns something, waking on broker changes.

    A broker outage (server restart, full disk) is waited out like any other
    wait: ``notify`` hears one line when it begins, looks are retried with
    back-off, and the wait resumes when the broker answers again. At the
    deadline an outage still going on raises BrokerError (exit 3), not
    WaitTimeout.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    outage = _Outage(notify)
    version = outage.attempt(broker.data_version)
    found = outage.attempt(check)
    if found is not None:
        return found
    backoff = _backoff(broker)  # a commit ends the wait at once, no looks in between
    try:
        while True:
            _wait_for_version(broker, backoff, outage, version, deadline, timeout, what)
            version = outage.attempt(broker.data_version)
            found = outage.attempt(check)
            if found is not None:
                return found
    finally:
        backoff.close()


def _wait_for_version(broker: Broker, backoff: Backoff, outage: _Outage, version: int | None,
                      deadline: float | None, timeout: float | None, what: str) -> None:
    """Return once the broker's data version differs from ``version`` (or cannot be told)."""
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            outage.raise_if_down(timeout)
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
        pause = outage.pause() if outage.down else backoff.timeout()
        if deadline is not None:
            pause = min(pause, max(0.0, deadline - time.monotonic()))
        backoff.sleep(pause)
        current = outage.attempt(broker.data_version)
        if current is None or outage.down:
            return  # the backend cannot tell (or is away): look again, still backing off
        if current != version:
            backoff.reset()
            return


def open_waiting(open_broker: Callable[[], Broker], *, timeout: float | None,
                 notify: Callable[[str], None] | None = None) -> Broker:
    """Open the broker for a wait; a server that does not answer yet is waited for
    like an outage in the middle of a wait (one line, back-off, BrokerError at
    the deadline)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    outage = _Outage(notify)
    while True:
        try:
            return open_broker()
        except BrokerUnavailable as exc:
            outage.failed(exc)
        if deadline is not None and time.monotonic() >= deadline:
            outage.raise_if_down(timeout)
        pause = outage.pause()
        if deadline is not None:
            pause = min(pause, max(0.0, deadline - time.monotonic()))
        time.sleep(pause)


class _Outage:
    """A waiter's view of broker errors: told once, retried with back-off."""

    def __init__(self, notify: Callable[[str], None] | None) -> None:
        self.notify = notify
        self.down = False
        self.error = ""
        self._delay = 0.25
        self._told = False

    def attempt(self, fn: Callable[[], T | None]) -> T | None:
        try:
            value = fn()
        except BrokerError as exc:
            self.failed(exc)
            return None
        self.down, self._delay = False, 0.25
        return value

    def failed(self, exc: BrokerError) -> None:
        self.down, self.error = True, str(exc)
        if not self._told and self.notify is not None:
            self._told = True
            self.notify(f"broker unreachable ({self.error}); waiting for it to return")

    def pause(self) -> float:
        delay, self._delay = self._delay, min(OUTAGE_RETRY_CAP, self._delay * 2)
        return delay

    def raise_if_down(self, timeout: float | None) -> None:
        if self.down:
            raise BrokerError(f"broker still unreachable after waiting {timeout:g}s: {self.error}")


def wait_for_change(broker: Broker, version: int | None, *, timeout: float | None) -> int | None:
    """Block until the broker's data version differs from ``version`` (or
    ``timeout`` passes); return the version now. For followers that print
    what is new: they look again only when someone committed something."""
    deadline = None if timeout is None else time.monotonic() + timeout
    backoff = _backoff(broker, cap=FOLLOW_CAP)
    try:
        while True:
            current = broker.data_version()
            if current is not None and current != version:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                return current
            pause = FOLLOW_CAP if current is None else backoff.timeout()
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            backoff.sleep(pause)
            if current is None:
                return None  # no change detection on this backend: look again after a pause
    finally:
        backoff.close()


def short_lived() -> None:
    """This process is a short command: open the change signal (and load ctypes,
    1-2 ms) only for a wait that outlasts the first burst. The CLI says so."""
    global _SHORT_LIVED
    _SHORT_LIVED = True


def _backoff(broker: Broker, *, cap: float = CAP) -> Backoff:
    """A back-off that a commit cuts short (see :func:`short_lived`)."""
    if not _SHORT_LIVED or ChangeSignal.cheap():
        return Backoff(cap=cap, signal=ChangeSignal.for_broker(broker))
    return Backoff(cap=cap, later=lambda: ChangeSignal.for_broker(broker))
