"""``weft run``: submit a task, stream its output, exit with its exit code."""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import click

from weft.cli.common import client, parse_pairs, parse_value, write_stream
from weft.cli.dependencies import after_fields, after_options
from weft.cli.task_options import spec_fields, task_options


def _load_spec_file(path: str) -> dict[str, Any]:
    from weft.errors import InvalidSpec

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise InvalidSpec(f"cannot read spec file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidSpec(f"spec file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidSpec(f"spec file {path} must hold a JSON object")
    return data


@click.command("run", context_settings={"ignore_unknown_options": False,
                                        "allow_interspersed_args": False})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--function", "function", metavar="MOD:FN", help="Run a Python callable instead of a command.")
@click.option("--arg", "fn_args", multiple=True, metavar="VALUE", help="Positional argument for --function (JSON or string); repeatable.")
@click.option("--kwarg", "fn_kwargs", multiple=True, metavar="K=V", help="Keyword argument for --function (value JSON or string); repeatable.")
@click.option("--spec", "spec_file", type=click.Path(dir_okay=False), help="Read the TaskSpec from a JSON file.")
@click.option("--shell", is_flag=True, help="Run COMMAND (one string) through /bin/sh -c.")
@task_options(each=False)
@click.option("--vram", "vram_mb", type=click.IntRange(min=0), help="VRAM per GPU to reserve, MB.")
@click.option("--retry-delay", type=click.FloatRange(min=0), help="Seconds before the first retry.")
@click.option("--retry-backoff", type=click.FloatRange(min=1), help="Multiply the delay by F each retry.")
@click.option("--retry-on", help="Comma list of failed,timeout,consumer_lost,killed.")
@click.option("--delay", type=click.FloatRange(min=0), help="Do not start before S seconds from now.")
@click.option("--request-id", help="Correlation id carried by every event (default: new UUID).")
@click.option("--stdin", "stdin_file", type=click.Path(dir_okay=False, allow_dash=False),
              help="Give the task this file as its stdin (streamed in chunks).")
@click.option("--no-stdin", is_flag=True,
              help="Do not pass our stdin on, even when it is a pipe or a file.")
@click.option("--hold", is_flag=True, help="Queue it held: it starts only after 'weft task release TID'. Prints the TID.")
@after_options
@click.option("--no-wait", is_flag=True, help="Print the TID and return at once.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the final result message as JSON, with stdout/stderr inline "
                   "(text, or base64 as stdout_encoding/stderr_encoding say).")
@click.pass_context
def run_cmd(ctx: click.Context, command: tuple[str, ...], function: str | None,
            fn_args: tuple[str, ...], fn_kwargs: tuple[str, ...], spec_file: str | None,
            shell: bool, no_wait: bool, as_json: bool, stdin_file: str | None, no_stdin: bool,
            hold: bool, **opts: Any) -> None:
    """Run COMMAND (or --function, or --spec) as a task and wait for it.

    Output streams as it is produced, byte for byte (stdout to stdout,
    stderr to stderr, in the order written). When our stdin is a pipe or a
    file (not a terminal), the task gets it as its stdin, streamed until
    EOF or until the task ends; --stdin FILE gives a file instead, --no-stdin
    gives nothing. With --no-wait, only a file (--stdin or '< FILE') is sent.
    weft exits with the task's exit code:
    124 on timeout, 128+N when killed by signal N, 1 when a function raised,
    2 when the task can never run here. Put options before the command, or
    separate them with '--':

    \b
      weft run echo hello
      weft run --timeout 5 -- sh -c 'sleep 1; echo done'
      weft run --function mypkg.jobs:square --arg 7
      weft run --spec task.json --no-wait
    """
    fields = _target_fields(command, function, fn_args, fn_kwargs, spec_file, shell, opts)
    source = _stdin_source(stdin_file, no_stdin, whole_only=no_wait or hold)
    fields.update(after_fields(opts, lambda: client(create=True)))
    pieces: dict[str, Any] = dict(
        command=list(command) if command else None,
        function=function,
        args=[parse_value(a) for a in fn_args],
        kwargs=parse_pairs(fn_kwargs, "--kwarg", json_values=True),
        request_id=opts.get("request_id"),
        **fields,
    )
    task = _submit(pieces, spec_file, delay=opts.get("delay"),
                   stdin_stream=source is not None, hold=hold)
    if no_wait or hold:
        if source is not None:
            task.client.send_stdin(task, source)
        click.echo(task.tid)
        return
    pump = StdinPump(task, source) if source is not None else None
    code = follow(task, as_json=as_json)
    if pump is not None:
        pump.finish()
    ctx.exit(code)


def _target_fields(command: tuple[str, ...], function: str | None, fn_args: tuple[str, ...],
                   fn_kwargs: tuple[str, ...], spec_file: str | None, shell: bool,
                   opts: dict[str, Any]) -> dict[str, Any]:
    """The TaskSpec fields of the task options, once the target (exactly one of
    COMMAND, --function, --spec) and the flags that go with it are checked."""
    from weft.errors import UsageError

    targets = sum(bool(x) for x in (command, function, spec_file))
    if targets != 1:
        raise UsageError("give exactly one of COMMAND, --function or --spec")
    if (fn_args or fn_kwargs) and not function:
        raise UsageError("--arg/--kwarg need --function")
    fields = spec_fields(opts)
    if shell:
        if len(command) != 1:
            raise UsageError("--shell takes the command as one string: weft run --shell 'a | b'")
        fields["shell"] = True
    return fields


def _submit(pieces: dict[str, Any], spec_file: str | None, *, delay: float | None,
            stdin_stream: bool, hold: bool) -> Any:
    """Queue the task: from the spec file with ``pieces`` over it, else from ``pieces``."""
    if spec_file:
        # A spec file may hold anything: validate it in full before queuing.
        from weft.client.specs import build_spec

        spec = build_spec(spec=_load_spec_file(spec_file), **pieces)
        return client(create=True).submit_spec(spec, delay=delay, stdin_stream=stdin_stream,
                                               hold=hold)
    # Flags are typed by click; the rest of the TaskSpec rules are checked
    # without pydantic, which would double this command's start-up time.
    from weft.client.fields import checked_fields

    return client(create=True).submit_fields(checked_fields(**pieces), delay=delay,
                                             stdin_stream=stdin_stream, hold=hold)


def _stdin_source(path: str | None, no_stdin: bool, *, whole_only: bool) -> Any:
    """What to give the task as stdin: --stdin FILE, else our own stdin when it is a
    pipe, a socket or a regular file (never a terminal, /dev/null or another device).

    ``whole_only`` (--no-wait, which sends it all before returning): only a
    regular file, which is sure to end; a pipe might never close.
    """
    import os
    import stat

    from weft.errors import UsageError

    if path is not None:
        if no_stdin:
            raise UsageError("give --stdin FILE or --no-stdin, not both")
        try:
            return open(path, "rb")  # noqa: SIM115 - read by the pump until EOF
        except OSError as exc:
            raise UsageError(f"--stdin: cannot read {path}: {exc.strerror}") from None
    if no_stdin:
        return None
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or (not whole_only and (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode))):
        return 0
    return None


class StdinPump:
    """Sends our stdin to the task from a background thread while we follow its output.

    It keeps only a few chunks ahead of the task and stops when the task
    ends, so an endless or never-closed input does not keep us waiting.
    """

    def __init__(self, task: Any, source: Any) -> None:
        import threading

        self.task = task
        self.ended = threading.Event()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, args=(source,), daemon=True,
                                       name="weft-stdin")
        self.thread.start()

    def _run(self, source: Any) -> None:
        try:
            self.task.client.send_stdin(self.task, source, done=self.ended.is_set)
        except Exception as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    def finish(self) -> None:
        self.ended.set()
        if self.error is not None:
            click.echo(f"weft: could not send stdin to the task: {self.error}", err=True)


def follow(task: Any, *, as_json: bool) -> int:
    """Stream a task's output until it ends; return the exit code to use.

    The first Ctrl-C asks the task to stop (and keeps streaming until it has);
    the second detaches, printing the TID: the task goes on without us.
    """
    interrupts = {"n": 0}

    def on_int(signum: int, frame: Any) -> None:
        interrupts["n"] += 1
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_int)
    shown = (0, 0)  # (attempt, seq) of the last chunk written: a restart must not repeat it
    try:
        while True:
            try:
                if not as_json:
                    for chunk in task.output():
                        key = (chunk.get("attempt", 1), chunk.get("seq", 0))
                        if key > shown:
                            shown = key
                            write_stream(chunk.get("stream", "stdout"), chunk.get("data", b""))
                result = task.wait()
                break
            except KeyboardInterrupt:
                if interrupts["n"] >= 2 or not _ask_stop(task):
                    click.echo(f"\nweft: detached; the task goes on: {task.tid}", err=True)
                    return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    return render_result(result, as_json=as_json)


def print_result_json(result: Any) -> None:
    """The result message plus ``stdout``/``stderr``, streamed so memory stays one chunk.

    Each stream is a JSON string: its text when it is UTF-8, else base64,
    named by ``stdout_encoding``/``stderr_encoding`` ("utf-8" or "base64").
    The value, if it was in the blob store, is inline here.
    """
    from weft.client.payloads import write_json_string

    body = {k: v for k, v in result.to_dict().items() if k != "value_blob"}
    body["value"] = result.wire_value  # JSON as it travelled: a pickled value stays enveloped
    head = json.dumps(body, default=str, separators=(",", ":"))
    out = sys.stdout
    out.write(head[:-1])
    for stream in ("stdout", "stderr"):
        out.write(f',"{stream}":')
        if result.output is None:
            out.write('""')
            encoding = "utf-8"
        else:
            encoding = write_json_string(_bytes_of(result, stream), _bytes_of(result, stream), out)
        out.write(f',"{stream}_encoding":"{encoding}"')
    out.write("}\n")
    out.flush()


def _bytes_of(result: Any, stream: str) -> Any:
    return (piece for _, piece in result.output.pieces(stream))


def _ask_stop(task: Any) -> bool:
    """Send STOP after the first Ctrl-C; False when a second Ctrl-C came meanwhile."""
    try:
        click.echo("\nweft: stopping the task (Ctrl-C again to detach)", err=True)
        task.stop(timeout=5.0)
    except KeyboardInterrupt:
        return False
    except Exception as exc:  # noqa: BLE001 - report and keep waiting
        click.echo(f"weft: could not stop: {exc}", err=True)
    return True


def render_result(result: Any, *, as_json: bool, replay_output: bool = False) -> int:
    if as_json:
        print_result_json(result)
        return result.cli_exit_code
    if replay_output and result.output is not None:
        for stream, piece in result.output.pieces():  # both streams, in the order written
            write_stream(stream, piece)
    if result.status == "completed" and result.value is not None:
        value = result.value
        if isinstance(value, str):
            click.echo(value)
        else:
            try:
                click.echo(json.dumps(value))
            except (TypeError, ValueError):  # a pickled Python value (Python API)
                click.echo(repr(value))
    elif result.status != "completed" and result.reason != "exit_code":
        detail = result.error or result.reason or ""
        if result.traceback:
            sys.stderr.write(result.traceback.rstrip() + "\n")
        click.echo(f"weft: task {result.tid} {result.status}"
                   + (f": {detail}" if detail else ""), err=True)
    return result.cli_exit_code
