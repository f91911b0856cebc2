"""The drain's rules (weft/runtime/draining.py), without a manager around them.

The manager-level behaviour (children TERMed after the grace, KILLed after
STOP_GRACE more, a second SIGINT killing) is covered end to end by
tests/test_shutdown.py; these pin the decisions themselves.
"""

from __future__ import annotations

import signal

from weft.runtime.draining import STOP_GRACE, Drain


def test_each_phase_is_due_once_term_after_the_grace_then_kill() -> None:
    drain = Drain(grace=10.0)
    assert drain.next_phase(0.0, running=True) is None  # not stopping
    drain.stop("stop requested", now=100.0)
    assert drain.next_phase(105.0, running=True) is None
    assert drain.next_phase(110.0, running=True) == "TERM"
    assert drain.next_phase(111.0, running=True) is None  # TERM once
    assert drain.next_phase(110.0 + STOP_GRACE, running=True) == "KILL"
    assert drain.next_phase(200.0, running=True) is None  # KILL once
    assert drain.next_phase(300.0, running=False) is None  # no children: nothing to signal


def test_a_second_sigint_kills_and_an_earlier_reason_is_kept() -> None:
    drain = Drain(grace=30.0)
    drain.on_signal(signal.SIGTERM, now=1.0)
    assert drain.reason == "signal SIGTERM" and not drain.kill_now
    drain.stop_unless_stopping("broker lost: replaced", 2.0, grace=0.0)
    assert drain.reason == "signal SIGTERM" and drain.grace == 30.0 and drain.since == 1.0
    drain.on_signal(signal.SIGINT, now=3.0)
    assert drain.kill_now and drain.next_phase(3.0, running=True) == "KILL"


def test_broker_lost_drains_at_once_and_done_waits_for_the_children() -> None:
    drain = Drain(grace=30.0)
    assert drain.done(running=False) is None  # running normally: the idle rule decides
    drain.stop_unless_stopping("broker lost: deleted", 5.0, grace=0.0)
    assert drain.next_phase(5.0, running=True) == "TERM"
    assert drain.done(running=True) is False and drain.done(running=False) is True
    drain.ended_while_draining("123", "failed")
    assert drain.ended == {"123": "failed"}
