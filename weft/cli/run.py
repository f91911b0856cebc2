"""``weft run``: submit a task, stream its output, exit with its exit code."""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import click

from weft.cli.common import echo_json, write_stream


def _parse_value(text: str) -> Any:
    """JSON when it parses, else the plain string (so --arg 3 is 3, --arg hi is 'hi')."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse_pairs(pairs: tuple[str, ...], what: str, *, json_values: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=what)
        out[key] = _parse_value(value) if json_values else value
    return out


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
@click.option("--name", help="A name for the task (shown in lists and process titles).")
@click.option("--env", "env", multiple=True, metavar="K=V", help="Set an environment variable; repeatable. Stored in clear in the broker: use --secret for secrets.")
@click.option("--secret", "secrets", multiple=True, metavar="NAME", help="Pass environment variable NAME, its value read by the manager from .weft/secrets or its own environment, never stored in the broker; repeatable.")
@click.option("--cwd", type=click.Path(file_okay=False), help="Working directory (default: here).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Kill the task after S seconds (exit 124).")
@click.option("--cpus", type=click.FloatRange(min=0), help="CPUs to reserve.")
@click.option("--memory", "memory_mb", type=click.IntRange(min=0), help="Memory to reserve, MB (also the enforced limit).")
@click.option("--gpus", type=click.IntRange(min=0), help="GPUs to reserve.")
@click.option("--vram", "vram_mb", type=click.IntRange(min=0), help="VRAM per GPU to reserve, MB.")
@click.option("--priority", type=click.IntRange(-1000, 1000), help="Higher runs first (default 0).")
@click.option("--retries", type=click.IntRange(0, 100), help="Retry a failed attempt up to N times.")
@click.option("--retry-delay", type=click.FloatRange(min=0), help="Seconds before the first retry.")
@click.option("--retry-backoff", type=click.FloatRange(min=1), help="Multiply the delay by F each retry.")
@click.option("--retry-on", help="Comma list of failed,timeout,consumer_lost,killed.")
@click.option("--delay", type=click.FloatRange(min=0), help="Do not start before S seconds from now.")
@click.option("--request-id", help="Correlation id carried by every event (default: new UUID).")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Attach a label; repeatable.")
@click.option("--no-wait", is_flag=True, help="Print the TID and return at once.")
@click.option("--json", "as_json", is_flag=True, help="Print the final result message as JSON.")
@click.pass_context
def run_cmd(ctx: click.Context, command: tuple[str, ...], function: str | None,
            fn_args: tuple[str, ...], fn_kwargs: tuple[str, ...], spec_file: str | None,
            shell: bool, no_wait: bool, as_json: bool, **opts: Any) -> None:
    """Run COMMAND (or --function, or --spec) as a task and wait for it.

    Output streams as it is produced; weft exits with the task's exit code:
    124 on timeout, 128+N when killed by signal N, 1 when a function raised,
    2 when the task can never run here. Put options before the command, or
    separate them with '--':

    \b
      weft run echo hello
      weft run --timeout 5 -- sh -c 'sleep 1; echo done'
      weft run --function mypkg.jobs:square --arg 7
      weft run --spec task.json --no-wait
    """
    from weft.errors import UsageError

    targets = sum(bool(x) for x in (command, function, spec_file))
    if targets != 1:
        raise UsageError("give exactly one of COMMAND, --function or --spec")
    if (fn_args or fn_kwargs) and not function:
        raise UsageError("--arg/--kwarg need --function")
    fields = _spec_fields(opts)
    if shell:
        if len(command) != 1:
            raise UsageError("--shell takes the command as one string: weft run --shell 'a | b'")
        fields["shell"] = True
    from weft.cli.common import client

    pieces: dict[str, Any] = dict(
        command=list(command) if command else None,
        function=function,
        args=[_parse_value(a) for a in fn_args],
        kwargs=_parse_pairs(fn_kwargs, "--kwarg", json_values=True),
        request_id=opts.get("request_id"),
        **fields,
    )
    if spec_file:
        # A spec file may hold anything: validate it in full before queuing.
        from weft.client.specs import build_spec

        spec = build_spec(spec=_load_spec_file(spec_file), **pieces)
        task = client(create=True).submit_spec(spec, delay=opts.get("delay"))
    else:
        # Flags are typed by click; the rest of the TaskSpec rules are checked
        # without pydantic, which would double this command's start-up time.
        from weft.client.fields import checked_fields

        task = client(create=True).submit_fields(checked_fields(**pieces),
                                                 delay=opts.get("delay"))
    if no_wait:
        click.echo(task.tid)
        return
    ctx.exit(follow(task, as_json=as_json))


def _spec_fields(opts: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in ("name", "cwd", "timeout", "priority"):
        if opts.get(key) is not None:
            fields[key] = opts[key]
    if opts.get("env"):
        fields["env"] = _parse_pairs(opts["env"], "--env", json_values=False)
    if opts.get("secrets"):
        fields["secrets"] = list(dict.fromkeys(opts["secrets"]))
    if opts.get("labels"):
        fields["labels"] = _parse_pairs(opts["labels"], "--label", json_values=False)
    resources = {k: opts[k] for k in ("cpus", "memory_mb", "gpus", "vram_mb") if opts.get(k) is not None}
    if resources:
        fields["resources"] = resources
    retry: dict[str, Any] = {}
    if opts.get("retries") is not None:
        retry["retries"] = opts["retries"]
    if opts.get("retry_delay") is not None:
        retry["delay"] = opts["retry_delay"]
    if opts.get("retry_backoff") is not None:
        retry["backoff"] = opts["retry_backoff"]
    if opts.get("retry_on"):
        retry["retry_on"] = [w.strip() for w in opts["retry_on"].split(",") if w.strip()]
    if retry:
        fields["retry"] = retry
    return fields


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
                            write_stream(chunk.get("stream", "stdout"), chunk.get("data", ""))
                result = task.wait()
                break
            except KeyboardInterrupt:
                if interrupts["n"] >= 2 or not _ask_stop(task):
                    click.echo(f"\nweft: detached; the task goes on: {task.tid}", err=True)
                    return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    return render_result(result, as_json=as_json)


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
        echo_json({**result.to_dict(), "stdout": result.stdout, "stderr": result.stderr})
        return result.cli_exit_code
    if replay_output:
        write_stream("stdout", result.stdout)
        write_stream("stderr", result.stderr)
    if result.status == "completed" and result.value is not None:
        value = result.value
        click.echo(value if isinstance(value, str) else json.dumps(value))
    elif result.status != "completed" and result.reason != "exit_code":
        detail = result.error or result.reason or ""
        if result.traceback:
            sys.stderr.write(result.traceback.rstrip() + "\n")
        click.echo(f"weft: task {result.tid} {result.status}"
                   + (f": {detail}" if detail else ""), err=True)
    return result.cli_exit_code
