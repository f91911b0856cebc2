"""``weft``: the command line, a thin layer over :class:`weft.WeftClient`.

Commands import the client lazily so ``weft --help`` stays fast. Every
:class:`weft.errors.WeftError` and every usage error ends here as one line on
stderr and the error's exit code; a traceback means a bug.
"""

from __future__ import annotations

import sys

import click

# Each command's module is imported only when that command runs (or help
# lists it): importing all of them cost 'weft run' about 15 ms of its start.
COMMANDS = {
    "run": "weft.cli.run:run_cmd",
    "submit": "weft.cli.submit:submit_cmd",
    "result": "weft.cli.tasks:result_cmd",
    "status": "weft.cli.tasks:status_cmd",
    "task": "",  # assembled by task_commands()
    "worker": "weft.cli.workers:worker_group",
    "job": "weft.cli.jobs:job_group",
    "queue": "weft.cli.ops:queue_group",
    "tidy": "weft.cli.ops:tidy_cmd",
    "metrics": "weft.cli.observe:metrics_cmd",
    "wait": "weft.cli.observe:wait_cmd",
    "events": "weft.cli.observe:events_cmd",
    "completion": "weft.cli.completion:completion_cmd",
    "group": "weft.cli.groups:group_group",
}


class LazyGroup(click.Group):
    """A group whose subcommands (:data:`COMMANDS`) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            import importlib

            module, _, attr = COMMANDS[cmd_name].partition(":")
            found = getattr(importlib.import_module(module), attr) if module else task_commands()
            self.add_command(found, cmd_name)
        return self.commands.get(cmd_name)


def task_commands() -> click.Group:
    """``weft task``: its own subcommands plus logs and the operator verbs."""
    from weft.cli import taskops
    from weft.cli.observe import logs_cmd
    from weft.cli.tasks import task_group

    task_group.add_command(logs_cmd)
    for cmd in (taskops.stop_cmd, taskops.kill_cmd, taskops.hold_cmd, taskops.release_cmd,
                taskops.restart_cmd, taskops.edit_cmd):
        task_group.add_command(cmd)
    return task_group


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="weft", prog_name="weft")
def cli() -> None:
    """weft: run commands and Python functions as durable tasks, each in its own process.

    Tasks are queued in a SQLite broker under .weft/ in your project (found
    like git finds .git, or set WEFT_CONTEXT). A background manager runs them
    as soon as there is room; 'weft run' starts one when none is running.

    \b
    Quick start:
      weft run echo hello               run a command, stream its output
      weft run --function mod:fn --arg 3
      weft run --no-wait -- sleep 60    queue it, print the TID
      weft status                       managers and task counts
      weft worker list                  live managers
    """


@cli.command("init")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--backend", type=click.Choice(["sqlite", "postgres"]),
              help="Broker backend to record in .weft/config.json (default: sqlite).")
@click.option("--dsn", metavar="DSN", help="PostgreSQL DSN of an existing database.")
@click.option("--schema", metavar="NAME", help="PostgreSQL schema for this project (default: weft).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def init_cmd(path: str | None, backend: str | None, dsn: str | None, schema: str | None,
             as_json: bool) -> None:
    """Create a weft project (.weft/ with its broker) in PATH or here.

    With --backend postgres --dsn DSN the project's broker is a schema in that
    database, recorded in .weft/config.json so every command, manager and host
    using the project finds it (WEFT_BROKER_* variables still override).
    """
    from weft.client.client import init_project

    ctx, created = init_project(path, backend=backend, dsn=dsn, schema=schema)
    if as_json:
        from weft.cli.common import echo_json

        echo_json({"root": str(ctx.root), "weft_dir": str(ctx.weft_dir), "created": created,
                   "backend": ctx.backend, "broker": ctx.describe()})
        return
    verb = "created" if created else "already exists:"
    click.echo(f"weft: {verb} {ctx.weft_dir} (broker: {ctx.describe()})")


def main(argv: list[str] | None = None) -> None:
    from weft.errors import WeftError

    args = sys.argv[1:] if argv is None else argv
    try:
        code = cli.main(args=args, prog_name="weft", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("weft: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "weft"
        message = exc.format_message()
        if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())) or "\n" in message:
            message = "missing a command"  # click's message is the whole help page
        click.echo(f"{where}: error: {message} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"weft: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except WeftError as exc:
        click.echo(f"weft: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def entry() -> None:
    """The ``weft`` executable: :func:`main`, then a quick exit.

    A short command spends a tenth of its life in the interpreter's
    teardown (freeing hundreds of modules, ~25 ms on the 2-core VM). Once the
    output is flushed and the exit handlers (which close the broker) have
    run, nothing is left to do, so the process ends at once. In-process
    callers (tests) use :func:`main`, which raises SystemExit as usual.
    """
    import atexit
    import os

    try:
        main()
        code: int = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            sys.stderr.write(f"{exc.code}\n")
            code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        code = code or 1
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # not CPython: exit the ordinary way
        sys.exit(code)
    run_exit_handlers()
    os._exit(code)


if __name__ == "__main__":
    entry()
