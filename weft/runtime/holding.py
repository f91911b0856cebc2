"""A batch that keeps what it could not write, so a broker outage loses nothing.

:class:`weft.runtime.batch.Batch` hands its records to the broker and forgets
them. During a broker outage (a Postgres restart, a full disk) that would
throw away the outcomes of tasks that finished meanwhile. :class:`HoldingBatch`
writes the same records in the same order, but drops each one only once the
broker has it: a flush that fails part-way leaves exactly the unwritten rest
held, and the next flush resumes there (never writing a record twice).

Held records are bounded in memory: past ``memory_limit`` bytes the oldest
are appended to a local spill file (one JSON line per unit; an atomic group
stays one unit) and written back first, in order, when the broker returns. A
manager that must exit while the broker is still away spills everything, and
the next manager started for the project on this host writes it back
(:func:`replay_spills`) before it looks for dead peers' work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from weft.broker import Broker
from weft.errors import WeftError
from weft.pathsafety import open_private, private_dir
from weft.runtime.batch import Batch

log = logging.getLogger("weft.manager")

MEMORY_LIMIT = 64 << 20  # bytes of held writes kept in memory before spilling
CHUNK = 512  # writes per transaction when a backlog is written back

# A spill unit: a list of (queue, body) writes (one, or an atomic group), or a
# settle fenced on its claim: {"writes": [...], "fence": {"queue", "id", ...}}.
Unit = Any


def spill_dir() -> Path:
    """Where held records go when memory is not enough: off the project's disk,
    which may be the one that is full."""
    return Path(os.environ.get("WEFT_SPILL_DIR") or tempfile.gettempdir()) / f"weft-{os.getuid()}"


def spill_path(root: Path, manager_tid: str) -> Path:
    key = hashlib.sha1(str(root).encode()).hexdigest()[:12]
    return spill_dir() / f"held-{key}-{manager_tid}.jsonl"


class HoldingBatch(Batch):
    def __init__(self, broker: Broker, *, spill: Path, memory_limit: int = MEMORY_LIMIT) -> None:
        super().__init__(broker)
        self.spill = spill
        self.memory_limit = memory_limit
        self._spilled_done = 0  # units of the spill file already written back

    @property
    def held(self) -> int:
        """Records waiting for the broker (in memory and spilled)."""
        return len(self.writes) + sum(len(ids) for ids in self.deletes.values()) + \
            sum(len(ids) for ids in self.last_deletes.values()) + self._spilled_units()

    def flush(self) -> None:
        """Write everything held, oldest first; what fails stays held (BrokerError raised).

        One transaction per :data:`CHUNK` writes (a step's writes are one), so a
        failure leaves exactly the unwritten rest held and nothing twice.
        """
        self._flush_spill()
        while True:
            pending = len(self.writes)
            units, fences, done, taken = self._plan(CHUNK)
            lost = self._commit(units, fences) if units else []
            del self.writes[:done]  # committed: never written again
            self._groups = [replace(g, start=g.start - done, end=g.end - done)
                            for g in self._groups[taken:]]
            if done == pending:  # the deletes were in this transaction too
                self.deletes.clear()
                self.last_deletes.clear()
            self._tell_lost(lost)  # may append claim_lost events: written next turn
            if done == pending and not self.writes and not self._groups:
                return

    def _drop_written(self, done: int) -> None:
        """Forget the first ``done`` writes (spilled), and the groups they held."""
        if done:
            del self.writes[:done]
            self._groups = [replace(g, start=g.start - done, end=g.end - done)
                            for g in self._groups if g.end > done or
                            (g.start >= done and g.start == g.end)]

    # -- bounding memory ------------------------------------------------------
    def bound(self) -> None:
        """Spill the oldest held writes while memory holds more than the limit."""
        size = sum(len(q) + len(b) for q, b in self.writes)
        if size <= self.memory_limit:
            return
        units, cut = self._units_upto(size - self.memory_limit // 2)
        try:
            self._append_spill(units)
        except (OSError, WeftError) as exc:  # keep them in memory rather than lose them
            log.warning("cannot spill held records to %s: %s", self.spill, exc)
            return
        self._drop_written(cut)
        log.warning("broker unreachable: spilled %d held record(s) to %s", cut, self.spill)

    def spill_all(self) -> int:
        """Spill every held write (the manager is exiting with the broker away)."""
        count = len(self.writes)
        if count:
            units, cut = self._units_upto(None)
            try:
                self._append_spill(units)
            except (OSError, WeftError) as exc:
                log.error("cannot spill %d held record(s) to %s: %s (they are lost)",
                          count, self.spill, exc)
                return 0
            self._drop_written(cut)
        return count

    def _units_upto(self, size: int | None) -> tuple[list[Unit], int]:
        """The oldest writes as spill units; a settle fenced on its claim keeps its
        fence, so writing it back is still conditional on the claim."""
        units: list[Unit] = []
        done = taken = 0
        groups = {g.start: g for g in self._groups}
        while done < len(self.writes) and (size is None or taken < size):
            group = groups.get(done)
            end = group.end if group is not None else done + 1
            writes = list(self.writes[done:end])
            if group is not None and group.claim is not None:
                units.append({"writes": writes, "fence": {
                    "queue": group.claim[0], "id": group.claim[1], "deletes": group.deletes,
                    "move_to": group.move_to, "body": group.body, "keep": group.keep}})
            else:
                units.append(writes)
            taken += sum(len(q) + len(b) for q, b in self.writes[done:end])
            done = end
        return units, done

    def _append_spill(self, units: list[Unit]) -> None:
        """Append units to the spill file (a private directory, never through a symlink)."""
        self.spill.parent.parent.mkdir(parents=True, exist_ok=True)
        private_dir(self.spill.parent)
        fd = open_private(self.spill, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        with os.fdopen(fd, "a") as fh:
            for unit in units:
                fh.write(json.dumps(unit, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _spilled_units(self) -> int:
        try:
            with open(self.spill) as fh:
                return max(0, sum(1 for _ in fh) - self._spilled_done)
        except FileNotFoundError:
            return 0

    def _flush_spill(self) -> None:
        def progressed(units: int) -> None:
            self._spilled_done = units

        write_back(self.broker, self.spill, start=self._spilled_done, progressed=progressed)
        self._spilled_done = 0


def write_back(broker: Broker, path: Path, *, start: int = 0,
               progressed: Callable[[int], None] | None = None) -> None:
    """Write a spill file's units to the broker, in order, then remove the file.

    ``start`` units are skipped (written by an earlier, interrupted call);
    ``progressed`` hears the count after each unit, so a caller can resume.
    """
    try:
        fh = open(path)
    except FileNotFoundError:
        return
    with fh:
        for index, line in enumerate(fh):
            if index < start:
                continue
            raw = json.loads(line)
            if isinstance(raw, dict):  # a fenced settle: still only if the claim is there
                fence = raw["fence"]
                broker.settle_claim(str(fence["queue"]), int(fence["id"]),
                                    writes=[(str(q), str(b)) for q, b in raw["writes"]],
                                    deletes=[(str(q), int(i)) for q, i in fence["deletes"]],
                                    move_to=fence.get("move_to"), body=fence.get("body"),
                                    keep=bool(fence.get("keep")))
                if progressed is not None:
                    progressed(index + 1)
                continue
            unit = [(str(q), str(b)) for q, b in raw]
            if len(unit) > 1:
                broker.write_atomic(unit)
            else:
                broker.write(*unit[0])
            if progressed is not None:
                progressed(index + 1)
    path.unlink(missing_ok=True)


def replay_spills(broker: Broker, root: Path) -> int:
    """Write back what managers of this project on this host spilled and could
    not write before they exited. Returns the number of files written back."""
    key = hashlib.sha1(str(root).encode()).hexdigest()[:12]
    replayed = 0
    for path in sorted(spill_dir().glob(f"held-{key}-*.jsonl")):
        claimed = path.with_suffix(f".replay-{os.getpid()}")
        try:
            path.rename(claimed)  # one replayer per file
        except OSError:
            continue
        try:
            write_back(broker, claimed)
        except Exception:
            claimed.rename(path)  # give it back; a later start tries again
            raise
        replayed += 1
        log.warning("wrote back outcomes a manager held through a broker outage (%s)", path.name)
    return replayed
