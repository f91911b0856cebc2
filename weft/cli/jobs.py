"""``weft job``: run, validate, list and inspect jobs (docs/jobs.md).

The data comes from :meth:`WeftClient.job` and :mod:`weft.jobs.rollup`;
this module only renders it.
"""

from __future__ import annotations

from typing import Any

import click

from weft.cli.common import client, echo_json, json_option, table, timeout_option

_set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                           help="Override a field: vars.NAME=V, steps.STEP.FIELD=V, "
                                "name=V (VALUE is JSON or a string). Repeatable.")


@click.group("job")
def job_group() -> None:
    """Jobs: a task whose children are its steps' tasks.

    \b
      weft job validate pipeline.toml
      weft job run pipeline.toml --set vars.count=50
      weft job status TID
      weft status TID --tree
    """


@job_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@_set_option
@json_option
def validate_cmd(file: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Check a job FILE (TOML or JSON) without running it.

    Exit 0 and the steps in the order they run; exit 2 with FILE:LINE, the
    field at fault and why (unknown field, bad value, unknown or cyclic
    'needs').
    """
    from weft.jobs.definition import load

    job = load(file, overrides)
    if as_json:
        echo_json({"name": job.name, "steps": [
            {"name": s.name, "needs": job.needs_of(s), "map": s.map is not None,
             "parallel": s.parallel, "on_error": s.on_error} for s in job.order()]})
        return
    click.echo(f"{file}: job {job.name!r} is valid: {len(job.steps)} step(s)")
    for step in job.order():
        needs = ", ".join(job.needs_of(step)) or "-"
        kind = f"map x{step.parallel}" if step.map is not None else "task"
        click.echo(f"  {step.name:<20} {kind:<10} needs {needs}  on_error {step.on_error}")


@job_group.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@_set_option
@click.option("--no-wait", is_flag=True, help="Print the job's TID and return at once.")
@timeout_option
@json_option
@click.pass_context
def run_cmd(ctx: click.Context, file: str, overrides: tuple[str, ...], no_wait: bool,
            timeout: float | None, as_json: bool) -> None:
    """Run the job in FILE as a task; wait and print each step's outcome.

    The job's children record it as their parent, so 'weft status TID
    --tree' shows the job, its steps' tasks and their states live. Exit 0
    when every step completed, 1 otherwise (5 when --timeout passed).
    """
    from weft.jobs.handle import definition_of

    job = definition_of(file, overrides)  # bad input: exit 2 before anything is queued
    handle = client(create=True).job(job)
    if no_wait:
        click.echo(handle.tid)
        return
    if not as_json:
        click.echo(f"weft: job {job.name} is task {handle.tid}", err=True)
    summary = handle.wait(timeout=timeout)
    if as_json:
        echo_json(summary)
    else:
        _render(summary)
    ctx.exit(0 if summary["status"] == "completed" else 1)


@job_group.command("status")
@click.argument("tid")
@json_option
def status_cmd(tid: str, as_json: bool) -> None:
    """A job's state and, per step, its tasks pending/queued/running/completed/failed."""
    summary = client().job_handle(tid).status()
    if as_json:
        echo_json(summary)
        return
    _render(summary)


@job_group.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """Every job in the project (started or queued), oldest first."""
    jobs = client().jobs()
    if as_json:
        echo_json(jobs)
        return
    if not jobs:
        click.echo("no jobs")
        return
    table(None, ["TID", "NAME", "STATUS"], [[j["tid"], j["name"], j["status"]] for j in jobs])


def _render(summary: dict[str, Any]) -> None:
    head = f"job {summary.get('name')} ({summary['tid']}): {summary['status']}"
    if summary.get("error"):
        head += f": {summary['error']}"
    click.echo(head)
    rows = []
    for step in summary.get("steps", []):
        items = step.get("items")
        rows.append([step["name"], "-" if items is None else items, step["pending"],
                     step["queued"], step["running"], step["completed"], step["failed"]])
    if rows:
        table(None, ["STEP", "ITEMS", "PENDING", "QUEUED", "RUNNING", "COMPLETED", "FAILED"],
              rows)
    if summary.get("output") is not None:
        import json

        output = summary["output"]
        click.echo(f"output: {output if isinstance(output, str) else json.dumps(output)}")
