"""``weft result``, ``weft status`` and ``weft task ...``."""

from __future__ import annotations

import time
from typing import Any

import click

from weft.cli.common import ago, client, echo_json, json_option, table, timeout_option


@click.command("result")
@click.argument("tid")
@timeout_option
@json_option
@click.pass_context
def result_cmd(ctx: click.Context, tid: str, timeout: float | None, as_json: bool) -> None:
    """Wait for task TID and print its output (or value), exiting with its exit code.

    The output is written as the task wrote it (bytes; stdout to stdout,
    stderr to stderr, in order). --json prints the result message with
    "stdout"/"stderr" as text, or base64 when "stdout_encoding" or
    "stderr_encoding" says so.
    """
    from weft.cli.run import render_result

    task = client().task(tid)
    result = task.wait(timeout=timeout)
    ctx.exit(render_result(result, as_json=as_json, replay_output=not as_json))


@click.command("status")
@click.argument("tid", required=False)
@click.option("--request-id", help="Only tasks with this request id.")
@click.option("--watch", is_flag=True, help="Live view (managers, running tasks, queue) until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between --watch refreshes.")
@click.option("--tree", is_flag=True, help="With TID: the tasks it spawned, recursively.")
@json_option
def status_cmd(tid: str | None, request_id: str | None, watch: bool, interval: float,
               tree: bool, as_json: bool) -> None:
    """Managers and task counts; or one task's state and timeline of events."""
    from weft.cli import observe

    if watch:
        if tid is not None or tree or as_json:
            raise click.UsageError("--watch shows the whole project; it takes no TID, --tree or --json")
        observe.watch(interval)
        return
    if tree and tid is None:
        raise click.UsageError("--tree needs a TID")
    c = client()
    if tid is not None:
        if tree:
            observe.print_tree(c.job_tree(tid), as_json)  # a job's children grouped by step
            return
        info = c.task(tid).status()
        info["children"] = c.tree(info["tid"])["rollup"]
        if as_json:
            echo_json(info)
            return
        _print_task(info)
        return
    workers = c.workers.list()
    overview = c.overview()
    if request_id is not None:
        tasks = c.tasks(request_id=request_id)
        counts: dict[str, int] = {}
        for t in tasks:
            counts[t["status"]] = counts.get(t["status"], 0) + 1
        overview["tasks"] = counts
        overview["request_id"] = request_id
        overview["deferred"] = [{"tid": t["tid"], "reason": t.get("reason")} for t in tasks
                                if t["status"] == "deferred"]
    if as_json:
        echo_json({"context": str(c.context.root), "broker": c.context.describe(),
                   "managers": [w.to_dict() for w in workers], **overview})
        return
    click.echo(f"project   {c.context.root}")
    click.echo(f"broker    {c.context.describe()}")
    click.echo(f"managers  {len(workers)} live" + "".join(
        f"\n  {w.tid}  {w.host} pid {w.pid}  running {w.record.get('load', {}).get('running', 0)}"
        + ("  paused" if w.paused else "")
        for w in workers))
    counts_text = ", ".join(f"{n} {s}" for s, n in sorted(overview["tasks"].items())) or "none"
    click.echo(f"tasks     {counts_text}")
    from weft.client.progress import text as progress_text

    for row in c.tasks(request_id=request_id):
        if row["status"] == "running" and row.get("progress"):
            click.echo(f"  {row['tid'][-10:]}  {row.get('name') or row.get('target') or ''}  "
                       f"{progress_text(row['progress'])}")
    click.echo(f"queued    {overview['queued_requests']} request(s) waiting"
               + (f", {overview['held_requests']} held" if overview.get("held_requests") else "")
               + (f", {overview['waiting_requests']} for dependencies"
                  if overview.get("waiting_requests") else ""))
    click.echo(f"rejected  {overview['dead_letters']} dead letter(s) in weft.spawn.rejected")
    blobs = overview.get("blob_store") or {}
    click.echo(f"blobs     {blobs.get('blobs', 0)} blob(s), {blobs.get('bytes', 0) / 2**20:.1f} MB")
    _print_deferred(overview.get("deferred") or [])


def _print_deferred(deferred: list[dict[str, Any]], limit: int = 5) -> None:
    """Why deferred tasks wait (an absent manager, a busy GPU...): the reason is the point."""
    if not deferred:
        return
    click.echo(f"deferred  {len(deferred)} task(s) waiting:")
    for row in deferred[:limit]:
        click.echo(f"  {row['tid'][-10:]}  {row.get('reason') or ''}".rstrip())
    if len(deferred) > limit:
        click.echo(f"  ... and {len(deferred) - limit} more (weft task list --status deferred)")


def _print_task(info: dict[str, Any]) -> None:
    click.echo(f"task      {info['tid']}  {info.get('name') or ''}".rstrip())
    click.echo(f"status    {info['status']}")
    for key in ("target", "group", "priority", "pid", "exit_code", "attempt", "reason",
                "request_id", "parent_tid", "restarted_from", "manager_tid", "error"):
        if info.get(key) is not None:
            click.echo(f"{key:<9} {info[key]}")
    if info.get("labels"):
        click.echo("labels    " + ", ".join(f"{k}={v}" for k, v in info["labels"].items()))
    from weft.client.progress import text as progress_text

    if info.get("progress"):
        click.echo(f"progress  {progress_text(info['progress'])}")
    from weft.client.tree import rollup_text

    if rollup_text(info.get("children") or {}):
        click.echo(f"children  {rollup_text(info['children'])}")
    if info.get("events"):
        click.echo("timeline")
        t0 = info["events"][0].get("ts", 0)
        for event in info["events"]:
            extra = event.get("reason") or ""
            click.echo(f"  +{event.get('ts', 0) - t0:8.3f}s  {event.get('event'):<16} "
                       f"{event.get('status'):<10} {extra}".rstrip())


@click.group("task")
def task_group() -> None:
    """Inspect and control tasks (a TID may be short: any unambiguous tail of 6+ digits)."""


@task_group.command("list")
@click.option("--request-id", help="Only tasks with this request id.")
@click.option("--status", "only_status", help="Only tasks in this state (queued, held, running ...).")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Only tasks with this label; repeatable.")
@click.option("--group", help="Only tasks in this group ('default': tasks without one).")
@click.option("--name", help="Only tasks with this name.")
@json_option
def task_list(request_id: str | None, only_status: str | None, labels: tuple[str, ...],
              group: str | None, name: str | None, as_json: bool) -> None:
    """List tasks, oldest first, each TID once: what they run, why they wait, their progress.

    
    WAITING says why a task that has not started waits: held, delayed until
    a time, deferred (with admission's reason), or queued for a free slot.
    
      weft task list --status queued
      weft task list --label sweep=lr --json
    """
    from weft.client.progress import text as progress_text
    from weft.client.selection import Selector, parse_labels
    from weft.client.waiting import why_waiting

    c = client()
    tasks = c.tasks(request_id=request_id)
    selector = Selector(labels=parse_labels(list(labels)), group=group, status=only_status,
                        name=name)
    records, running = c.groups.state()
    tasks = [dict(t, waiting=why_waiting(t, groups=records, running=running))
             for t in tasks if selector.matches(t)]
    if as_json:
        echo_json(tasks)
        return
    table(None, ["TID", "STATUS", "RUNS", "NAME", "LABELS", "GROUP", "PRIO", "WAITING", "EXIT",
                 "UPDATED", "PROGRESS"],
          [[t["tid"][-10:], t["status"], _cut(t.get("target")), t.get("name") or "",
            ",".join(f"{k}={v}" for k, v in (t.get("labels") or {}).items()),
            t.get("group") or "default", t.get("priority") or 0, t.get("waiting") or "",
            t.get("exit_code"), ago(t.get("updated_at")), progress_text(t.get("progress"))]
           for t in tasks])


def _cut(text: str | None, width: int = 40) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _control(command: str, tid: str, timeout: float | None, as_json: bool) -> None:
    reply = client().task(tid).control(command, timeout=timeout or 10.0)
    if as_json:
        echo_json(reply)
    elif not reply.get("ok"):
        raise click.ClickException(reply.get("error") or "command failed")
    elif command == "STATUS":
        details = reply.get("details") or {}
        click.echo(f"{reply['tid']}  {reply['status']}  pid {reply.get('pid')}")
        for key, value in details.items():
            click.echo(f"  {key}: {value}")
    else:
        click.echo(reply.get("reply") or reply.get("status"))
    if not reply.get("ok"):
        raise SystemExit(1)


def _make_control(command: str, help_text: str) -> click.Command:
    @task_group.command(command.lower(), help=help_text)
    @click.argument("tid")
    @timeout_option
    @json_option
    def cmd(tid: str, timeout: float | None, as_json: bool) -> None:
        _control(command, tid, timeout, as_json)

    return cmd


@task_group.command("ping")
@click.argument("tid")
@click.option("--timeout", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds to wait for the answer.")
@json_option
def task_ping(tid: str, timeout: float, as_json: bool) -> None:
    """Check a live process answers for TID: prints PONG and the round trip.

    \b
    PONG <ms>           a live process answered on ctrl_out in time (exit 0)
    finished (<status>) the task has ended; nothing is left to answer (exit 1)
    queued              no manager has started it yet (exit 1)
    no answer ...       nothing answered within --timeout (exit 1)
    """
    reply = client().task(tid).ping(timeout=timeout)
    if as_json:
        echo_json(reply)
    elif reply["alive"]:
        click.echo(f"PONG {reply['rtt_ms']:.1f} ms")
    elif (reply.get("details") or {}).get("finished"):
        click.echo(f"finished ({reply['status']})")
    elif reply.get("status") in ("queued", "deferred") and reply.get("error") is None:
        click.echo(f"{reply['status']} (no process yet)")
    else:
        click.echo(f"weft: {reply.get('error')} (last recorded status: {reply.get('status')})",
                   err=True)
    if not reply["alive"]:
        raise SystemExit(1)


_make_control("STATUS", "Ask a running task (or manager) for its live status; --json includes its pid.")
_make_control("PAUSE", "Pause a running task (SIGSTOP its tree) or a manager (stop claiming); "
              "a task not started yet is refused (use 'weft task hold').")
_make_control("RESUME", "Resume a paused task or manager.")


def wait_tids(tids: list[str], timeout: float | None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    c = client()
    for tid in tids:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        c.task(tid).wait(timeout=remaining)
