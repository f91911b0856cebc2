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
from weft.errors import WaitTimeout
from weft.runtime.wakeup import Backoff

T = TypeVar("T")
FOLLOW_CAP = 0.05  # a human watching a stream does not need 5 ms latency


def poll_until(broker: Broker, check: Callable[[], T | None], *, timeout: float | None,
               what: str) -> T:
    deadline = None if timeout is None else time.monotonic() + timeout
    backoff = Backoff()
    version = broker.data_version()
    while True:
        found = check()
        if found is not None:
            return found
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}")
            time.sleep(backoff.timeout())
            current = broker.data_version()
            if current is None:
                break  # the backend cannot tell: look again, still backing off
            if current != version:
                version = current
                backoff.reset()
                break


def wait_for_change(broker: Broker, version: int | None, *, timeout: float | None) -> int | None:
    """Block until the broker's data version differs from ``version`` (or
    ``timeout`` passes); return the version now. For followers that print
    what is new: they look again only when someone committed something."""
    deadline = None if timeout is None else time.monotonic() + timeout
    backoff = Backoff(cap=FOLLOW_CAP)
    while True:
        current = broker.data_version()
        if current is not None and current != version:
            return current
        if deadline is not None and time.monotonic() >= deadline:
            return current
        pause = FOLLOW_CAP if current is None else backoff.timeout()
        if deadline is not None:
            pause = min(pause, max(0.0, deadline - time.monotonic()))
        time.sleep(pause)
        if current is None:
            return None  # no change detection on this backend: look again after a pause
