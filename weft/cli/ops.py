"""Operator tools: ``weft queue ...`` and ``weft tidy``.

For inspection and repair by hand. Moves keep message ids, so a request
moved back from ``weft.spawn.rejected`` keeps its TID.
"""

from __future__ import annotations

import click

from weft.cli.common import client, echo_json, json_option, table


@click.group("queue")
def queue_group() -> None:
    """Look inside the broker's queues and repair them by hand."""


@queue_group.command("list")
@json_option
def queue_list(as_json: bool) -> None:
    """Every queue that holds messages, with pending and total counts."""
    stats = client().queues.stats()
    if as_json:
        echo_json([{"queue": q, "pending": p, "total": t} for q, p, t in stats])
        return
    table(None, ["QUEUE", "PENDING", "TOTAL"], [[q, p, t] for q, p, t in stats])


def _emit(messages: list[tuple[str, int]], as_json: bool) -> None:
    for body, mid in messages:
        if as_json:
            echo_json({"id": str(mid), "body": body})
        else:
            click.echo(body)


@queue_group.command("peek")
@click.argument("queue")
@click.option("--all", "peek_all", is_flag=True, help="Every pending message, not just the oldest.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N messages.")
@json_option
def queue_peek(queue: str, peek_all: bool, limit: int | None, as_json: bool) -> None:
    """Show messages without removing them (oldest first)."""
    messages = client().queues.peek(queue, limit=limit or (None if peek_all else 1))
    if not messages:
        raise SystemExit(_empty(queue))
    _emit(messages, as_json)


def _empty(queue: str) -> int:
    click.echo(f"weft: queue {queue} is empty", err=True)
    return 4


@queue_group.command("read")
@click.argument("queue")
@click.option("--id", "message_id", type=int, help="Read this message id only.")
@json_option
def queue_read(queue: str, message_id: int | None, as_json: bool) -> None:
    """Remove and print the oldest message (or --id)."""
    msg = client().queues.read(queue, message_id=message_id)
    if msg is None:
        raise SystemExit(_empty(queue))
    _emit([msg], as_json)


@queue_group.command("write")
@click.argument("queue")
@click.argument("body")
@json_option
def queue_write(queue: str, body: str, as_json: bool) -> None:
    """Append BODY to QUEUE and print its message id."""
    mid = client().queues.write(queue, body)
    if as_json:
        echo_json({"queue": queue, "id": str(mid)})
    else:
        click.echo(mid)


@queue_group.command("move")
@click.argument("source")
@click.argument("dest")
@click.option("--id", "message_id", type=int, help="Move only this message id.")
@click.option("--all", "move_all", is_flag=True, help="Move every pending message.")
@json_option
def queue_move(source: str, dest: str, message_id: int | None, move_all: bool,
               as_json: bool) -> None:
    """Move messages atomically (keeping their ids) from SOURCE to DEST."""
    queues = client().queues
    if move_all:
        n = queues.move_all(source, dest)
        if as_json:
            echo_json({"source": source, "dest": dest, "moved": n})
        else:
            click.echo(f"moved {n}")
        return
    moved = queues.move(source, dest, message_id=message_id)
    if moved is None:
        raise SystemExit(_empty(source))
    if as_json:
        echo_json({"source": source, "dest": dest, "moved": 1, "id": str(moved[1])})
    else:
        click.echo(f"moved {moved[1]}")


@queue_group.command("delete")
@click.argument("queue")
@click.option("--id", "message_id", type=int, help="Delete only this message id.")
@click.option("--yes", is_flag=True, help="Do not ask before deleting a whole queue.")
@json_option
def queue_delete(queue: str, message_id: int | None, yes: bool, as_json: bool) -> None:
    """Delete one message (--id) or, with confirmation, a whole queue."""
    queues = client().queues
    if message_id is not None:
        n = queues.delete(queue, [message_id])
    else:
        if not yes:
            click.confirm(f"delete every message in {queue}?", abort=True)
        n = queues.clear(queue)
    if as_json:
        echo_json({"queue": queue, "deleted": n})
    else:
        click.echo(f"deleted {n}")


ENDED = ("completed", "failed", "timeout", "cancelled", "killed", "rejected")


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    """``90``, ``90s``, ``15m``, ``12h`` or ``7d`` as seconds."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    text = value.strip().lower()
    scale = units.get(text[-1:])
    try:
        number = float(text[:-1] if scale else text)
    except ValueError:
        number = -1.0
    if not number >= 0 or number == float("inf"):
        raise click.BadParameter(f"expected a duration like 90s, 15m, 12h or 7d, got {value!r}")
    return number * (scale or 1)


@click.command("tidy")
@click.option("--retention", type=click.FloatRange(min=0), default=7 * 24 * 3600.0,
              show_default=True, help="Keep finished tasks' queues and events this many seconds.")
@click.option("--older-than", callback=_duration, metavar="AGE",
              help="Same as --retention, as 90s, 15m, 12h or 7d.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(ENDED),
              help="Only tasks that ended so; repeatable (e.g. keep failures for a post-mortem).")
@click.option("--dry-run", is_flag=True, help="Say what would go, change nothing.")
@json_option
def tidy_cmd(retention: float, older_than: float | None, statuses: tuple[str, ...],
             dry_run: bool, as_json: bool) -> None:
    """Drop old finished tasks' queues and events, then vacuum the broker.

    Blobs (large outputs, results and stdin) that no remaining message
    refers to are removed too, once older than the retention (at most an hour).

    
      weft tidy --dry-run
      weft tidy --status completed --older-than 1d
    """
    report = client().tidy(retention=retention if older_than is None else older_than,
                           dry_run=dry_run, status=statuses or None)
    if as_json:
        echo_json(report)
    elif report.get("dry_run"):
        click.echo(f"would drop {report['tasks_to_drop']} finished task(s), "
                   f"{report['events_to_drop']} event(s), {report['managers_to_drop']} stopped "
                   "manager(s) (dry run: nothing changed)")
    else:
        click.echo(f"dropped {report['tasks_dropped']} finished task(s), "
                   f"{report['events_dropped']} event(s), {report['managers_dropped']} stopped "
                   "manager(s); broker vacuumed")
