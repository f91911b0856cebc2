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
