"""How long to sleep between looks at the broker.

SQLite has no push notification, but ``PRAGMA data_version`` is a cheap
"did anyone commit?" check. Right after activity we look again almost at
once (a short busy burst: the next message usually follows quickly), then
back off geometrically to a cap, and to a longer cap after a long idle so an
idle manager costs next to nothing.
"""

from __future__ import annotations

import time

BURST = 0.0005
CAP = 0.005
IDLE_AFTER = 10.0
IDLE_CAP = 0.05


class Backoff:
    def __init__(self, *, burst: float = BURST, cap: float = CAP) -> None:
        self.burst = burst
        self.cap = cap
        self.reset()

    def reset(self) -> None:
        self._delay = self.burst
        self._since = time.monotonic()

    def timeout(self) -> float:
        delay = self._delay
        cap = IDLE_CAP if time.monotonic() - self._since > IDLE_AFTER else self.cap
        self._delay = min(cap, self._delay * 1.5)
        return delay
