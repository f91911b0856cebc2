"""``weft task stop|kill|hold|release|restart``: an operator's verbs.

Each takes one TID or, for the bulk verbs, several TIDs or a selection (``--label``,
``--request-id``, ``--group``, ``--status``, ``--name``, ``--all``); the
work is the client's (:mod:`weft.client.selection`, :mod:`.holding`,
:mod:`.restart`), this module only parses and renders.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from weft.cli.common import client, echo_json, json_option, parse_pairs, timeout_option

STATES = ("queued", "deferred", "held", "spawning", "running", "paused")


def selection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The bulk filters, shared by stop, kill, hold and release."""
    for option in reversed([
        click.argument("tids", metavar="[TID]...", nargs=-1),
        click.option("--label", "labels", multiple=True, metavar="K=V",
                     help="Tasks with this label; repeatable (all must match)."),
        click.option("--request-id", help="Tasks with this request id."),
        click.option("--group", help="Tasks in this group ('default': tasks without one)."),
        click.option("--status", type=click.Choice(STATES), help="Tasks in this state."),
        click.option("--name", help="Tasks with this name."),
        click.option("--all", "select_all", is_flag=True, help="Every task that has not ended."),
        click.option("--yes", is_flag=True, help="Do not ask before acting on --all."),
    ]):
        fn = option(fn)
    return fn


def _where(tids: tuple[str, ...], labels: tuple[str, ...], request_id: str | None,
           group: str | None, status: str | None, name: str | None, select_all: bool, yes: bool,
           verb: str) -> dict[str, Any] | None:
    """The client's filters (None with TIDs); refuses TIDs mixed with filters."""
    filters = {"label": list(labels) or None, "request_id": request_id, "group": group,
               "status": status, "name": name}
    given = {k: v for k, v in filters.items() if v}
    if tids:
        if given or select_all:
            raise click.UsageError("give TIDs or filters, not both")
        return None
    if not given and not select_all:
        raise click.UsageError("give a TID, or select tasks with --label, --request-id, "
                               "--group, --status, --name or --all")
    if select_all and not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("--all needs --yes when not run from a terminal")
        click.confirm(f"{verb} every task that has not ended?", abort=True)
    return {**given, "all": select_all}


def _render(outcomes: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        echo_json(outcomes)
        return
    for o in outcomes:
        click.echo(f"{o.get('tid')}  {o.get('status')}  {o.get('reply') or ''}".rstrip())
    if not outcomes:
        click.echo("no matching task", err=True)


def _make_cancel(command: str, help_text: str) -> click.Command:
    @click.command(command, help=help_text)
    @selection_options
    @timeout_option
    @json_option
    def cmd(tids: tuple[str, ...], labels: tuple[str, ...], request_id: str | None,
            group: str | None, status: str | None, name: str | None, select_all: bool,
            yes: bool, timeout: float | None, as_json: bool) -> None:
        where = _where(tids, labels, request_id, group, status, name, select_all, yes, command)
        c = client()
        kill = command == "kill"
        if where is None and len(tids) > 1:  # each answered, none started afterwards
            _render(c.cancel(list(tids), kill=kill, timeout=timeout or 10.0), as_json)
            return
        if where is None:
            reply = c.task(tids[0]).control(command.upper(), timeout=timeout or 10.0)
            if as_json:
                echo_json(reply)
            elif not reply.get("ok"):
                raise click.ClickException(reply.get("error") or "command failed")
            else:
                click.echo(reply.get("reply") or reply.get("status"))
            return
        _render(c.cancel(kill=kill, timeout=timeout or 10.0, **where), as_json)

    return cmd


stop_cmd = _make_cancel("stop", """Stop tasks gracefully: SIGTERM to each process group, then SIGKILL.

\b
A queued or held task is taken off the queue and ends 'cancelled'. With
several TIDs or with filters, every one is stopped and listed (with --json:
a list of {tid, status, reply}); none of them starts afterwards.
Stopping a job also stops its children: its queued ones are cancelled, its
running ones stopped, and none starts once the command returns.
\b
  weft task stop 4412345678
  weft task stop 4412345678 4412345999 4412346123
  weft task stop --label sweep=lr --status queued
  weft task stop --group gpu --yes --all
""")
kill_cmd = _make_cancel("kill", """Kill tasks' whole process trees at once (see 'stop' for selecting).

\b
  weft task kill 4412345678
  weft task kill --request-id nightly-42
""")


def _make_hold(command: str, help_text: str) -> click.Command:
    @click.command(command, help=help_text)
    @selection_options
    @json_option
    def cmd(tids: tuple[str, ...], labels: tuple[str, ...], request_id: str | None,
            group: str | None, status: str | None, name: str | None, select_all: bool,
            yes: bool, as_json: bool) -> None:
        where = _where(tids, labels, request_id, group, status, name, select_all, yes, command)
        c = client()
        fn = c.release if command == "release" else c.hold
        _render(fn(list(tids)) if where is None else fn(**where), as_json)

    return cmd


hold_cmd = _make_hold("hold", """Keep queued tasks from starting until 'weft task release'.

\b
The request moves to weft.spawn.held (same TID, same place in line); no
manager claims it there. 'weft run --hold' queues a task held.
\b
  weft task hold 4412345678 4412345999
  weft task hold --label sweep=lr
""")
release_cmd = _make_hold("release", """Let held tasks start again, in their old place in the queue.

\b
  weft task release 4412345678
  weft task release --label sweep=lr
""")


@click.command("restart")
@click.argument("tid")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--env", "env", multiple=True, metavar="K=V", help="Set (or override) a variable; repeatable.")
@click.option("--cwd", type=click.Path(file_okay=False), help="Run in this directory instead.")
@click.option("--hold", is_flag=True, help="Queue the new task held.")
@json_option
def restart_cmd(tid: str, command: tuple[str, ...], env: tuple[str, ...], cwd: str | None,
                hold: bool, as_json: bool) -> None:
    """Run an ended task again as a new task; print the new TID.

    \b
    Works for failed, killed, cancelled, timed-out and completed tasks: the
    new task gets the old one's recorded spec (command or function, name,
    labels, group, env, resources ...) and records 'restarted_from'. Options
    go before TID; a new command after '--' replaces the old one.
    \b
      weft task restart 4412345678
      weft task restart --env LR=0.01 4412345678
      weft task restart 4412345678 -- python train.py --resume
    """
    pairs = parse_pairs(env, "--env")
    task = client().restart(tid, env=pairs or None, cwd=cwd, command=list(command) or None,
                            hold=hold)
    if as_json:
        echo_json({"tid": task.tid, "restarted_from": client().resolve_tid(tid), "held": hold})
    else:
        click.echo(task.tid)


@click.command("edit")
@click.argument("tid")
@click.option("--priority", type=click.IntRange(-1000, 1000), help="New priority (higher runs first).")
@click.option("--env", "env", multiple=True, metavar="K=V", help="Set a variable; repeatable.")
@click.option("--group", help="Move it to this group ('default' removes its group).")
@json_option
def edit_cmd(tid: str, priority: int | None, env: tuple[str, ...], group: str | None,
             as_json: bool) -> None:
    """Change a queued or held task; refused once it has started.

    \b
    The task keeps its TID and its place in line among equal priorities.
    \b
      weft task edit 4412345678 --priority 10
      weft task edit 4412345678 --env LR=0.01 --group gpu
    """
    pairs = parse_pairs(env, "--env")
    if priority is None and not pairs and group is None:
        raise click.UsageError("give --priority, --env or --group")
    done = client().edit(tid, priority=priority, env=pairs or None, group=group)
    if as_json:
        echo_json(done)
    else:
        click.echo(f"{done['tid']}  priority {done['priority']}  group {done['group'] or 'default'}")
