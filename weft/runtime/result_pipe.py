"""The read side of a task's result pipe, in the launcher: its one report line, capped.

The task process writes one JSON line, its outcome, to a pipe of its own
(see :mod:`weft.runtime.child`). A return value larger than a chunk is not
in that line (the task process stores it in the blob store itself and sends
its reference, :mod:`weft.runtime.result_blob`), but a smaller one, a
traceback or a pickled exception is, and the task's own code could write
anything to the pipe: past the cap (``WEFT_MAX_RESULT_MB``) the launcher
keeps draining the pipe, so the task can exit, but drops the bytes, and the
outcome says ``result_too_large`` instead; the task fails and nothing else
(the launcher, the manager) pays for it.
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_CAP = 1 << 30


class ResultPipe:
    def __init__(self, cap: int | None) -> None:
        self.cap = cap or DEFAULT_CAP
        self.buf = bytearray()
        self.size = 0

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size <= self.cap:
            self.buf += data
        else:
            self.buf.clear()

    def outcome(self) -> dict[str, Any] | None:
        """The task's report (its last line), ``result_too_large``, or None (it reported nothing)."""
        if self.size > self.cap:
            return {"error": f"the result ({self.size / 2**20:.1f} MB) is larger than "
                             f"WEFT_MAX_RESULT_MB ({self.cap >> 20} MB)",
                    "reason": "result_too_large"}
        text = self.buf.decode(errors="replace").strip()
        self.buf = bytearray()
        if not text:
            return None
        try:
            outcome = json.loads(text.splitlines()[-1])
        except ValueError:
            return None
        return outcome if isinstance(outcome, dict) else None
