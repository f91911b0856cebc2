"""``weft group add|set|pause|resume|list``: groups with their own limit.

The records are the client's (:mod:`weft.client.groups`); every manager's
admission obeys them (:mod:`weft.runtime.groups`).
"""

from __future__ import annotations

from typing import Any

import click

from weft.cli.common import client, echo_json, json_option, table


@click.group("group")
def group_group() -> None:
    """Task groups: a parallel limit and a pause that every manager obeys.

    \b
    A task joins a group with 'weft run --group NAME'; tasks without one are
    in 'default'. A group needs no record until you limit or pause it.
    \b
      weft group add gpu --parallel 2
      weft run --group gpu --no-wait -- python train.py
      weft group pause gpu          # nothing more of it starts; running ones go on
      weft group resume gpu
      weft group set gpu --parallel 4
      weft group list
    """


def _show(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(record)
        return
    limit = record.get("parallel") or "unlimited"
    click.echo(f"group {record['group']}: parallel {limit}"
               + (", paused" if record.get("paused") else ""))


@group_group.command("add")
@click.argument("name")
@click.option("--parallel", type=click.IntRange(min=1), help="Run at most N of its tasks at once.")
@json_option
def group_add(name: str, parallel: int | None, as_json: bool) -> None:
    """Create group NAME (optionally with a parallel limit)."""
    _show(client(create=True).groups.add(name, parallel=parallel), as_json)


@group_group.command("set")
@click.argument("name")
@click.option("--parallel", type=click.IntRange(min=1), help="Run at most N of its tasks at once.")
@click.option("--unlimited", is_flag=True, help="Remove the group's limit.")
@json_option
def group_set(name: str, parallel: int | None, unlimited: bool, as_json: bool) -> None:
    """Change group NAME's limit (creating its record if needed)."""
    if parallel is None and not unlimited:
        raise click.UsageError("give --parallel N or --unlimited")
    _show(client().groups.set(name, parallel=parallel, unlimited=unlimited), as_json)


@group_group.command("pause")
@click.argument("name")
@json_option
def group_pause(name: str, as_json: bool) -> None:
    """No task of NAME starts, on any manager, until 'weft group resume'."""
    _show(client().groups.pause(name), as_json)


@group_group.command("resume")
@click.argument("name")
@json_option
def group_resume(name: str, as_json: bool) -> None:
    """Let NAME's tasks start again."""
    _show(client().groups.resume(name), as_json)


@group_group.command("list")
@json_option
def group_list(as_json: bool) -> None:
    """Groups with their limit, pause and queued / held / running counts."""
    rows = client().groups.list()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no groups")
        return
    table(None, ["GROUP", "PARALLEL", "PAUSED", "QUEUED", "HELD", "RUNNING"],
          [[r["group"], r.get("parallel") or "-", "yes" if r.get("paused") else "",
            r["queued"], r["held"], r["running"]] for r in rows])
