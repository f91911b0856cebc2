"""``weft submit``: queue one command task per line of a file or stdin, print the TIDs."""

from __future__ import annotations

import sys
from typing import Any

import click

from weft.cli.task_options import spec_fields, task_options


@click.command("submit")
@click.argument("source", required=False, default="-", metavar="[FILE|-]")
@click.option("--shell", is_flag=True, help="Run each line through /bin/sh -c (pipes, redirections, variables).")
@task_options(each=True)
@click.option("--batch", type=click.IntRange(1, 10000), default=500, show_default=True,
              help="Tasks queued per broker transaction.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"count": N, "tids": [...]} instead of one TID a line.')
def submit_cmd(source: str, shell: bool, batch: int, as_json: bool, **opts: Any) -> None:
    """Queue one command task per line of FILE (or stdin, '-'), print their TIDs.

    Each line is a command, split into words as a shell would (quotes and
    backslashes) but not expanded: use --shell for pipes, redirections and
    variables. Blank lines and lines starting with '#' are skipped. Every
    line is checked before anything is queued: a bad line is reported by its
    number and nothing is queued (nor a project created). The tasks are then queued in batches (one
    broker transaction each, thousands of tasks a second) and their TIDs
    printed, one per line, in input order, as each batch is committed. Should
    the broker fail part-way, the batches already committed stay queued and
    their TIDs are printed (with --json too) before the error. A manager is
    started if none is running. The options apply to every task.

    \b
      seq 1000 | sed 's/^/sleep 0./' | weft submit -
      weft submit --shell jobs.txt
      weft submit --json --group nightly < commands.txt
    """
    from weft.cli.common import client, echo_json
    from weft.client.bulk import check_lines, queue_checked

    fields = spec_fields(opts)
    tasks = check_lines(_read(source), shell=shell, **fields)  # before a project is created
    batches = queue_checked(client(create=True), tasks, batch)
    if as_json:
        from weft.errors import BulkError

        tids: list[str] = []
        try:
            for part in batches:
                tids.extend(part)
        except BulkError:  # the batches before it stay queued: say which, then fail
            echo_json({"count": len(tids), "tids": tids})
            raise
        echo_json({"count": len(tids), "tids": tids})
        return
    out = sys.stdout
    for part in batches:
        out.write("\n".join(part) + "\n")
        out.flush()


def _read(source: str) -> list[str]:
    """The input's lines; UsageError (one line) if it cannot be read as UTF-8 text."""
    from weft.errors import UsageError

    try:
        if source == "-":
            if sys.stdin is None or sys.stdin.isatty():
                raise UsageError("weft submit reads commands from a file or a pipe, "
                                 "not a terminal: weft submit FILE, or ... | weft submit -")
            return sys.stdin.buffer.read().decode("utf-8").splitlines()
        with open(source, encoding="utf-8") as fh:
            return fh.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{'stdin' if source == '-' else source} is not UTF-8 text "
                         f"(byte {exc.start})") from None
