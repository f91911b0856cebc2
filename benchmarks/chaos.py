"""Chaos run: tasks flow through managers while managers and task processes are SIGKILLed.

    python benchmarks/chaos.py --tasks 1000 [--managers 2] [--seed 1] [--dir DIR]

Submits ``--tasks`` short tasks (mostly ``true``, some short sleeps, a third
with one retry), and while they flow, at random moments: SIGKILLs a manager
(then starts a replacement), SIGKILLs a manager together with its launcher,
SIGKILLs a running task's process, freezes a manager (SIGSTOP, half the
time also SIGKILLing its launcher so peers recover its claims) and thaws it
(SIGCONT) after longer than the heartbeat lease, or (``--outage SECONDS``) takes the
broker away for that long while managers and their tasks keep running: a
SQLite broker's files are made immutable (root, chattr), a Postgres server
(``--postgres DSN``) is stopped and started with ``$WEFT_CI_PG_CTL``. When everything has settled it checks
the promise of ARCHITECTURE.md §5 and prints the figures as JSON:

- every task reached exactly one terminal state (one final event, one result);
- no attempt of any task was started twice;
- nothing is left in any reserved queue and nothing waits in the spawn queue.

Exit status 0 when every check holds. ``tests/test_chaos.py`` runs a small
version of it (marked slow).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

FREEZE_FOR = 6.5  # longer than the lease at a 1 s heartbeat (3 x 1 s + 2 s)
FINAL_EVENTS = {"task_completed", "task_failed", "task_timeout", "task_killed",
                "task_cancelled", "task_rejected"}


class Chaos:
    def __init__(self, root: Path, *, tasks: int, managers: int, seed: int) -> None:
        from weft.client.client import WeftClient

        self.root = root
        self.n_tasks = tasks
        self.n_managers = managers
        self.rng = random.Random(seed)
        os.environ.setdefault("WEFT_HEARTBEAT_INTERVAL", "1")
        self.client = WeftClient(root, auto_start=False)
        self.managers: list[Any] = []
        self.all_pids: set[int] = set()
        self.kills = Counter()
        self.tids: list[str] = []
        self.frozen: dict[int, float] = {}  # manager pid -> when to thaw it
        self.outage_seconds = 0.0
        self._outage_until: float | None = None
        self._frozen: list[Path] = []
        self._pg_ctl: str | None = None

    # -- processes ------------------------------------------------------------
    def start_manager(self) -> None:
        info = self.client.workers.start(idle_timeout=60, max_concurrency=8)
        self.managers.append(info)
        self.all_pids.update({info.pid, int(info.record.get("launcher_pid") or 0)})

    def kill_manager(self, with_launcher: bool) -> None:
        awake = [m for m in self.managers if m.pid not in self.frozen]  # let a freeze play out
        if not awake:
            return
        victim = awake[self.rng.randrange(len(awake))]
        self.managers.remove(victim)
        if with_launcher:
            _quietly(os.killpg, victim.pid, signal.SIGKILL)  # manager and launcher share a group
            self.kills["manager_and_launcher"] += 1
        else:
            _quietly(os.kill, victim.pid, signal.SIGKILL)
            self.kills["manager"] += 1
        _reap(victim.pid)
        self.start_manager()

    def freeze_manager(self) -> None:
        """SIGSTOP a manager past its lease; half the time its launcher dies meanwhile."""
        candidates = [m for m in self.managers if m.pid not in self.frozen]
        if not candidates:
            return
        # The busiest one: a freeze matters when the manager holds claims.
        held = {m.tid: self.client.broker.count(f"T{m.tid}.reserved") for m in candidates}
        victim = max(candidates, key=lambda m: (held[m.tid], self.rng.random()))
        _quietly(os.kill, victim.pid, signal.SIGSTOP)
        self.frozen[victim.pid] = time.monotonic() + FREEZE_FOR
        # Thawed by a timer, not by this loop: a manager frozen inside a SQLite write
        # transaction holds the broker's lock, so this loop may block until it wakes.
        timer = threading.Timer(FREEZE_FOR, _quietly, (os.kill, victim.pid, signal.SIGCONT))
        timer.daemon = True
        timer.start()
        launcher = 0
        if self.rng.random() < 0.5:
            record = self.client.workers.status(victim.tid).record
            launcher = int(record.get("launcher_pid") or 0)
        if launcher:
            _quietly(os.kill, launcher, signal.SIGKILL)
            self.kills["freeze_and_launcher"] += 1
        else:
            self.kills["freeze"] += 1

    def thaw(self, *, everything: bool = False) -> None:
        now = time.monotonic()
        for pid, when in list(self.frozen.items()):
            if everything or now >= when:
                _quietly(os.kill, pid, signal.SIGCONT)
                del self.frozen[pid]

    def kill_consumer(self) -> None:
        running = self._running_pids()
        if not running:
            return
        _quietly(os.kill, self.rng.choice(running), signal.SIGKILL)
        self.kills["consumer"] += 1

    def broker_outage(self) -> None:
        """Take the broker away until :meth:`end_outage`: stop the Postgres server, or
        make the SQLite files immutable (every write fails with EPERM)."""
        if self.client.context.backend == "postgres":
            ctl = os.environ.get("WEFT_CI_PG_CTL")
            if ctl and subprocess.run([*shlex.split(ctl), "stop", "-m", "fast"],
                                      capture_output=True).returncode == 0:
                self._pg_ctl = ctl
                self._outage_until = time.monotonic() + self.outage_seconds
                self.kills["broker_outage"] += 1
            return
        db = self.root / ".weft" / "broker.db"
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            if path.exists() and subprocess.run(["chattr", "+i", str(path)],
                                                capture_output=True).returncode == 0:
                self._frozen.append(path)
        if self._frozen:
            self._outage_until = time.monotonic() + self.outage_seconds
            self.kills["broker_outage"] += 1

    def end_outage(self, *, force: bool = False) -> None:
        if self._outage_until is None or (not force and time.monotonic() < self._outage_until):
            return
        for path in self._frozen:
            subprocess.run(["chattr", "-i", str(path)], check=False)
        if self._pg_ctl:
            subprocess.run([*shlex.split(self._pg_ctl), "start"], capture_output=True, check=False)
            self._warm_up()
        self._frozen, self._outage_until, self._pg_ctl = [], None, None

    def _warm_up(self) -> None:
        """This process's pooled connection died with the server: the first call
        after a restart fails once while the pool replaces it."""
        from weft.errors import BrokerError

        for _ in range(20):
            try:
                self.client.broker.queue_stats()
                return
            except BrokerError:
                time.sleep(0.25)

    @property
    def in_outage(self) -> bool:
        return self._outage_until is not None

    def _running_pids(self) -> list[int]:
        started: dict[str, int] = {}
        for event in self.events():
            if event.get("event") == "task_started" and event.get("pid"):
                started[event["tid"]] = int(event["pid"])
            elif event.get("event") in FINAL_EVENTS or event.get("event") == "task_retrying":
                started.pop(event.get("tid", ""), None)
        return list(started.values())

    # -- the run ----------------------------------------------------------------
    def submit(self, count: int) -> None:
        for _ in range(count):
            roll = self.rng.random()
            command = ["sleep", "0.3"] if roll < 0.15 else ["true"]
            retry = {"retries": 1} if self.rng.random() < 0.33 else None
            task = self.client.submit(command=command, retry=retry)
            self.tids.append(task.tid)

    def run(self, *, kill_every: float = 0.5, deadline: float = 600.0) -> dict[str, Any]:
        started = time.monotonic()
        for _ in range(self.n_managers):
            self.start_manager()
        batch = max(1, self.n_tasks // 20)
        while (len(self.tids) < self.n_tasks or self.in_outage or self.frozen
               or not self.settled()):
            self.thaw()
            self.end_outage()
            if len(self.tids) < self.n_tasks and not self.in_outage:
                self.submit(min(batch, self.n_tasks - len(self.tids)))
            if (len(self.tids) < self.n_tasks or self.rng.random() < 0.3) and not self.in_outage:
                self.chaos_step()
            time.sleep(self.rng.uniform(0.5, 1.5) * kill_every)
            if time.monotonic() - started > deadline:
                self.thaw(everything=True)
                break
        elapsed = time.monotonic() - started
        return self.report(elapsed)

    def chaos_step(self) -> None:
        roll = self.rng.random()
        if roll < 0.25:
            self.kill_manager(with_launcher=False)
        elif roll < 0.35:
            self.kill_manager(with_launcher=True)
        elif roll < 0.45:
            self.freeze_manager()
        elif roll < 0.8:
            self.kill_consumer()
        elif roll < 0.85 and self.outage_seconds > 0:
            self.broker_outage()

    def settled(self) -> bool:
        from weft.errors import BrokerError

        try:
            finished = {e["tid"] for e in self.events() if e.get("event") in FINAL_EVENTS}
        except BrokerError:
            return False  # just back from an outage: look again next round
        return finished >= set(self.tids)

    # -- checking -----------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body, _ in self.client.broker.peek_all("weft.tasks.log")]

    def pending(self) -> list[tuple[str, int]]:
        """Claims and requests still waiting: (queue, count), for every backend."""
        return [(name, count) for name, count, _total in self.client.broker.queue_stats()
                if count and (name == "weft.spawn.requests"
                              or (name.startswith("T") and name.endswith(".reserved")))]

    def result_bodies(self) -> list[tuple[str, str]]:
        out = []
        for tid in self.tids:
            for body, _ in self.client.broker.peek_all(f"T{tid}.outbox"):
                if '"type":"result"' in body:
                    out.append((f"T{tid}.outbox", body))
        return out

    def report(self, elapsed: float) -> dict[str, Any]:
        events = self.events()
        wanted = set(self.tids)
        finals = Counter(e["tid"] for e in events if e.get("event") in FINAL_EVENTS
                         and e["tid"] in wanted)
        starts = Counter((e["tid"], e.get("attempt", 1)) for e in events
                         if e.get("event") == "task_started" and e["tid"] in wanted)
        results = Counter()
        statuses = Counter()
        reasons = Counter()
        for queue, body in self.result_bodies():
            tid = queue[1:].split(".", 1)[0]
            if tid in wanted:
                results[tid] += 1
                message = json.loads(body)
                statuses[message["status"]] += 1
                if message["status"] != "completed":
                    reasons[message.get("reason") or "?"] += 1
        leftovers = self.pending()
        attempts = Counter(e.get("attempt", 1) for e in events
                           if e.get("event") in FINAL_EVENTS and e["tid"] in wanted)
        checks = {
            "every_task_one_terminal_event": all(finals[t] == 1 for t in wanted),
            "every_task_one_result": all(results[t] == 1 for t in wanted),
            "no_attempt_started_twice": all(n == 1 for n in starts.values()),
            "nothing_left_reserved_or_queued": not leftovers,
        }
        return {
            "tasks": len(wanted), "seconds": round(elapsed, 1),
            "tasks_per_second": round(len(wanted) / elapsed, 1) if elapsed else None,
            "kills": dict(self.kills), "final_status": dict(statuses),
            "claims_lost": sum(1 for e in events if e.get("event") == "claim_lost"),
            "not_completed_reasons": dict(reasons),
            "final_attempt": {str(k): v for k, v in sorted(attempts.items())},
            "missing_results": sorted(wanted - set(results))[:10],
            "leftovers": leftovers[:10], "checks": checks, "ok": all(checks.values()),
        }

    def close(self) -> None:
        self.thaw(everything=True)
        self.end_outage(force=True)  # never leave the broker immutable
        for info in self.managers:
            _quietly(os.kill, info.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for info in self.managers:
            while _alive(info.pid) and time.monotonic() < deadline:
                _reap(info.pid)
                time.sleep(0.05)
        for pid in self.all_pids:
            if pid:
                _quietly(os.killpg, pid, signal.SIGKILL)
                _reap(pid)
        self.client.close()

    def quiesce(self, timeout: float = 30.0) -> None:
        """Wait for recovery to finish: no claim or request left (or the timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pending():
            time.sleep(0.2)


def _quietly(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run_chaos(root: Path, *, tasks: int, managers: int = 2, seed: int = 1,
              kill_every: float = 0.5, outage: float = 0.0) -> dict[str, Any]:
    """One chaos run in an initialised project; returns the report."""
    chaos = Chaos(root, tasks=tasks, managers=managers, seed=seed)
    chaos.outage_seconds = outage
    started = time.monotonic()
    try:
        chaos.run(kill_every=kill_every)
        chaos.quiesce()
        return chaos.report(time.monotonic() - started)
    finally:
        chaos.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--managers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill-every", type=float, default=0.5,
                        help="mean seconds between chaos actions while submitting")
    parser.add_argument("--outage", type=float, default=0.0, metavar="SECONDS",
                        help="also take the broker away for this long at random moments: "
                             "SQLite files made immutable (needs root and chattr), or the "
                             "Postgres server stopped ($WEFT_CI_PG_CTL); 0 = never")
    parser.add_argument("--postgres", metavar="DSN",
                        help="run on a fresh schema of this PostgreSQL database")
    parser.add_argument("--dir", help="project directory (default: a new temporary one)")
    args = parser.parse_args(argv)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="weft-chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    from weft import context

    context.init(root)
    schema = None
    if args.postgres:
        schema = f"chaos_{os.getpid()}_{args.seed}"
        context.write_config(root, {"broker_backend": "postgres", "broker_target": args.postgres,
                                    "broker_schema": schema})
    report = run_chaos(root, tasks=args.tasks, managers=args.managers, seed=args.seed,
                       kill_every=args.kill_every, outage=args.outage)
    report["project"] = str(root)
    if schema is not None:
        from weft.broker.postgres import drop_schema

        drop_schema(args.postgres, schema)
        report["backend"] = "postgres"
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
