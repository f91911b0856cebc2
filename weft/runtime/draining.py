"""How a manager stops: why, since when, and which signal its children get next.

A manager is told to stop in several ways (SIGTERM/SIGINT, a STOP or KILL
control message, an idle timeout, a broker outage past
``--max-broker-outage``, its broker file deleted or replaced). Each only
records a reason here; the manager's loop then drains: it claims nothing
new, lets running children finish within the grace, sends them TERM once
the grace runs out and KILL :data:`STOP_GRACE` seconds later, and exits
when none are left.

This bookkeeping lives apart from :class:`~weft.runtime.manager.Manager`
so the manager's loop reads as the steps it takes, and so the rules of a
drain (who may override whom, each phase signalled once) sit in one place.
It holds state and decides; it never signals a process itself.
"""

from __future__ import annotations

import signal

STOP_GRACE = 5.0  # between TERM and KILL when the drain grace runs out


class Drain:
    """One manager's stop: its reason (None while running), grace and phase."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.reason: str | None = None
        self.kill_now = False
        self.since: float | None = None
        self.ended: dict[str, str] = {}  # how each task ended while draining
        self._phase: str | None = None

    @property
    def stopping(self) -> bool:
        return self.reason is not None

    def on_signal(self, signum: int, now: float) -> None:
        """The first SIGTERM/SIGINT drains; a SIGINT after that kills."""
        if self.reason is None:
            self.reason, self.since = f"signal {signal.Signals(signum).name}", now
        elif signum == signal.SIGINT:
            self.kill_now = True

    def stop(self, reason: str, now: float) -> None:
        """A STOP request: drain from now (a repeated STOP restarts the grace)."""
        self.reason, self.since = reason, now

    def kill(self, reason: str) -> None:
        self.reason, self.kill_now = reason, True

    def stop_unless_stopping(self, reason: str, now: float, *, grace: float | None = None) -> None:
        """Stop for a reason of the manager's own (outage, broker lost), keeping an earlier one."""
        if self.reason is not None:
            return
        self.reason, self.since = reason, now
        if grace is not None:
            self.grace = grace

    def ended_while_draining(self, tid: str, state: str) -> None:
        if self.reason is not None:
            self.ended[tid] = state

    def done(self, running: bool) -> bool | None:
        """True/False once stopping or killing decides it; None when the drain has no say."""
        if self.kill_now and not running:
            return True
        if self.reason is not None:
            return not running
        return None

    def next_phase(self, now: float, running: bool) -> str | None:
        """The signal ("TERM" or "KILL") the children are due now, each phase once; else None."""
        if self.reason is None or not running:
            return None
        if self.since is None:
            self.since = now
        waited = now - self.since
        phase = ("KILL" if self.kill_now or waited >= self.grace + STOP_GRACE
                 else "TERM" if waited >= self.grace else None)
        if phase is None or phase == self._phase:
            return None  # each phase signals once; the launcher escalates TERM to KILL itself
        self._phase = phase
        return phase
