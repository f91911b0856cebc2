"""``client.groups``: task groups with their own parallel limit and pause.

Records live in ``weft.groups`` (see :mod:`weft.runtime.groups`, which the
managers' admission reads); this is the operator's side: create, change,
pause, resume and list, with each group's queued, held and running counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from weft.errors import NotFound, UsageError
from weft.runtime.groups import DEFAULT, Group, read_groups, running_by_group, write_group

if TYPE_CHECKING:
    from weft.client.client import WeftClient


def _check_name(name: str) -> str:
    from weft.models.rules import group_name

    try:
        group_name(name)
    except ValueError as exc:
        raise UsageError(f"group name {name!r}: {exc}") from None
    return name


def _check_parallel(parallel: int | None) -> int | None:
    if parallel is not None and (isinstance(parallel, bool) or not isinstance(parallel, int)
                                 or parallel < 1):
        raise UsageError(f"--parallel must be a whole number >= 1, got {parallel!r}")
    return parallel


class Groups:
    def __init__(self, client: WeftClient) -> None:
        self.client = client

    def _current(self, name: str) -> Group | None:
        return read_groups(self.client.broker).get(_check_name(name))

    def add(self, name: str, *, parallel: int | None = None) -> dict[str, Any]:
        """Create group ``name``; UsageError if it already has a record."""
        if self._current(name) is not None:
            raise UsageError(f"group {name} exists (change it with 'weft group set')")
        return write_group(self.client.broker, Group(name, _check_parallel(parallel))).to_dict()

    def set(self, name: str, *, parallel: int | None = None,
            unlimited: bool = False) -> dict[str, Any]:
        """Change (or create) ``name``'s limit; ``unlimited=True`` removes it."""
        old = self._current(name) or Group(name)
        limit = None if unlimited else (_check_parallel(parallel) or old.parallel)
        return write_group(self.client.broker, Group(name, limit, old.paused)).to_dict()

    def pause(self, name: str) -> dict[str, Any]:
        """No task of the group starts (on any manager) until :meth:`resume`;
        running ones go on."""
        old = self._current(name) or Group(name)
        return write_group(self.client.broker, Group(name, old.parallel, True)).to_dict()

    def resume(self, name: str) -> dict[str, Any]:
        old = self._current(name)
        if old is None:
            raise NotFound(f"no group {name}")
        return write_group(self.client.broker, Group(name, old.parallel, False)).to_dict()

    def state(self) -> tuple[dict[str, Group], dict[str, int]]:
        """(records by name, running tasks by group); running is only counted
        when some group has a record (it reads every manager's claims)."""
        records = read_groups(self.client.broker)
        return records, (running_by_group(self.client.broker) if records else {})

    def list(self) -> list[dict[str, Any]]:
        """Every group with a record or a task that has not ended, with counts."""
        broker = self.client.broker
        records = read_groups(broker)
        rows: dict[str, dict[str, Any]] = {
            name: {**g.to_dict(), "queued": 0, "held": 0, "running": 0}
            for name, g in records.items()}
        for task in self.client.tasks():
            status = task.get("status")
            key = {"queued": "queued", "deferred": "queued", "held": "held"}.get(str(status))
            if key is None:
                continue
            name = task.get("group") or DEFAULT
            row = rows.setdefault(name, {**Group(name).to_dict(), "queued": 0, "held": 0,
                                         "running": 0})
            row[key] += 1
        for name, n in running_by_group(broker).items():
            rows.setdefault(name, {**Group(name).to_dict(), "queued": 0, "held": 0,
                                   "running": 0})["running"] = n
        return [rows[name] for name in sorted(rows)]
