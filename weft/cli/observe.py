"""Watching weft: ``weft metrics``, ``weft wait``, ``weft events``,
``weft task logs``, and the ``--watch`` / ``--tree`` views of ``weft status``.

Data comes from the client (:meth:`WeftClient.snapshot`, ``tree``,
``events``, ``task_log``, ``metrics``); this module only renders it. A
terminal gets rich views; a pipe gets plain text (or JSON lines with
``--json``), so scripts and tests read the same facts. Followers stop on
Ctrl-C with exit 0; rich is imported only inside the commands.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any

import click

from weft.cli.common import client, duration, echo_json, json_option, timeout_option

FAILED_WORDS = ("failed", "timeout", "killed", "cancelled", "rejected")


def _clock(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts)).strftime("%H:%M:%S.%f")[:-3]
    except (TypeError, ValueError):
        return "--:--:--.---"


def _is_tty() -> bool:
    return sys.stdout.isatty()


# -- weft metrics ---------------------------------------------------------------
@click.command("metrics")
def metrics_cmd() -> None:
    """Print the Prometheus exposition once, computed from the broker.

    For cron and node_exporter's textfile collector. A manager started with
    'weft worker start --metrics-addr HOST:PORT' serves the same families
    live over HTTP.
    """
    click.echo(client().metrics(), nl=False)


# -- weft wait ----------------------------------------------------------------------
@click.command("wait")
@click.argument("tids", nargs=-1, required=True)
@timeout_option
@json_option
@click.pass_context
def wait_cmd(ctx: click.Context, tids: tuple[str, ...], timeout: float | None,
             as_json: bool) -> None:
    """Wait for every TID to end. Exit 0 if all completed, 1 if any did not,
    5 if the timeout passed first."""
    c = client()
    tasks = [c.task(tid) for tid in dict.fromkeys(tids)]
    finished = []
    show_bar = _is_tty() and not as_json
    if show_bar:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), transient=False) as bar:
            job = bar.add_task("waiting", total=len(tasks))
            for task in c.as_completed(tasks, timeout=timeout):
                finished.append(task)
                bar.update(job, advance=1, description=_wait_line(task))
    else:
        for task in c.as_completed(tasks, timeout=timeout):
            finished.append(task)
            if as_json:
                echo_json(task.wait().to_dict())
            else:
                click.echo(_wait_line(task))
    bad = [t for t in finished if t.wait().status != "completed"]
    if not as_json:
        click.echo(f"{len(finished) - len(bad)} completed, {len(bad)} did not"
                   + ("" if not bad else ": " + ", ".join(f"{t.short_tid} {t.wait().status}"
                                                           for t in bad)))
    ctx.exit(1 if bad else 0)


def _wait_line(task: Any) -> str:
    res = task.wait()
    code = "" if res.exit_code is None else f" exit {res.exit_code}"
    return f"{task.tid}  {res.status}{code}"


# -- weft events / weft task logs -------------------------------------------------
def event_line(event: dict[str, Any]) -> str:
    tid = str(event.get("tid", ""))
    parts = [_clock(event.get("ts")), tid[-10:], f"{event.get('event', ''):<16}",
             f"{event.get('status', ''):<10}"]
    for key in ("name", "request_id", "reason", "exit_code", "error"):
        if event.get(key) is not None:
            parts.append(f"{key}={event[key]}")
    if event.get("event") == "task_progress":
        from weft.client.progress import text

        parts.append(text(event.get("details")))
    return "  ".join(parts)


@click.command("events")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--request-id", help="Only events of this request id.")
@click.option("--tid", help="Only events of this task (or manager).")
@click.option("--last", "-n", type=click.IntRange(min=1), help="Start with only the newest N.")
@json_option
def events_cmd(follow: bool, request_id: str | None, tid: str | None, last: int | None,
               as_json: bool) -> None:
    """Print weft.tasks.log: every state change of every task and manager."""
    try:
        for event in client().events(request_id=request_id, tid=tid, last=last, follow=follow):
            if as_json:
                echo_json(event)
            else:
                click.echo(event_line(event))
    except KeyboardInterrupt:
        return


@click.command("logs")
@click.argument("tid")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the task ends.")
@json_option
def logs_cmd(tid: str, follow: bool, as_json: bool) -> None:
    """A task's output and lifecycle events, in the order they happened.

    Output is written as the task wrote it (bytes, both streams in order).
    For a job, every child's lines follow the job's own, prefixed by the
    step and item that wrote them ('square[3] ...'); with --follow they are
    printed as they are written, children the job starts meanwhile included,
    until the job and its children have ended.

    --json prints one object per line: {"type": "event"|"stream"|"result",
    "tid", "request_id", ...}; a stream entry's "data" is its text, or
    base64 when "encoding" is "base64".
    """
    from weft.jobs.logs import prefix

    try:
        for entry in _log_entries(tid, follow):
            tag = prefix(entry)
            if as_json:
                echo_json(entry)
            elif entry["type"] == "stream":
                from weft.cli.common import write_stream
                from weft.models.payload import decode_bytes

                data = decode_bytes(entry)
                if tag:  # a job's child: every line says which step and item wrote it
                    mark = tag.encode()
                    data = b"".join(mark + line for line in data.splitlines(keepends=True))
                write_stream(entry.get("stream", "stdout"), data)
            elif entry["type"] == "event":
                click.echo(f"# {tag}{event_line(entry)}")
            else:
                click.echo(f"# {tag}{_clock(entry.get('finished_at'))}  result  {entry.get('status')}"
                           f"  exit_code={entry.get('exit_code')}")
    except KeyboardInterrupt:
        return


def _log_entries(tid: str, follow: bool) -> Any:
    """A job's log covers its children (weft.jobs.logs); any other task's is its own."""
    c = client()
    entries = c.job_log(tid, follow=follow)
    return entries if entries is not None else c.task_log(tid, follow=follow)


# -- weft status TID --tree ----------------------------------------------------------
def print_tree(node: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(node)
        return
    from rich.console import Console
    from rich.tree import Tree

    root = Tree(_node_label(node), highlight=False)
    _add_children(root, node)
    Console(soft_wrap=True, highlight=False).print(root)


def _node_label(node: dict[str, Any]) -> str:
    from weft.client.tree import rollup_text

    parts = [node["tid"], node.get("name"), node["status"]]
    if node.get("exit_code") is not None:
        parts.append(f"(exit {node['exit_code']})")
    summary = rollup_text(node["rollup"])
    if summary:
        parts.append(f"- children: {summary}")
    return "  ".join(str(p) for p in parts if p)


def _add_children(branch: Any, node: dict[str, Any]) -> None:
    for kid in node["children"]:
        _add_children(branch.add(_node_label(kid)), kid)


# -- weft status --watch ---------------------------------------------------------------
def watch(interval: float) -> None:
    """Redraw the project view every ``interval`` seconds (sooner when the
    broker changes) until Ctrl-C."""
    c = client()
    try:
        if _is_tty():
            from rich.live import Live

            with Live(_rich_frame(c.snapshot()), auto_refresh=False, screen=False) as live:
                version = c.change_marker()
                while True:
                    version = _pause(c, version, interval)
                    live.update(_rich_frame(c.snapshot()), refresh=True)
        else:
            version = c.change_marker()
            while True:
                click.echo(plain_frame(c.snapshot()))
                sys.stdout.flush()
                version = _pause(c, version, interval)
    except KeyboardInterrupt:
        return


def _pause(c: Any, version: Any, interval: float) -> Any:
    """The interval, or a quarter of it when the broker changes sooner: a
    redraw rebuilds the picture from the log, so a busy broker must not
    turn the view into a busy loop."""
    least = interval / 4
    time.sleep(least)
    return c.wait_for_change(version, timeout=interval - least)


def _bar_text(used: float, total: float, width: int = 20) -> str:
    filled = 0 if total <= 0 else min(width, round(width * used / total))
    return f"[{'#' * filled}{'.' * (width - filled)}] {used:g}/{total:g}"


def _capacity(manager: dict[str, Any]) -> list[tuple[str, float, float]]:
    caps, load = manager["capabilities"], manager["load"]
    reserved = load.get("reserved") or {}
    rows = [("tasks", float(load.get("running") or 0), float(caps.get("max_concurrency") or 0))]
    for key, label in (("cpus", "cpus"), ("memory_mb", "mem MB")):
        if caps.get(key) is not None:
            rows.append((label, float(reserved.get(key) or 0), float(caps[key])))
    gpus = caps.get("gpus")
    if isinstance(gpus, list) and gpus:
        rows.append(("gpus", float(reserved.get("gpus") or 0), float(len(gpus))))
    return rows


def plain_frame(snap: dict[str, Any]) -> str:
    lines = [f"== weft status {_clock(snap['at'])} =="]
    lines.append(f"managers  {len(snap['managers'])} live")
    for m in snap["managers"]:
        state = " (paused)" if m["paused"] else ""
        lines.append(f"  {m['tid']}  pid {m['pid']} on {m['host']}{state}")
        for label, used, total in _capacity(m):
            lines.append(f"    {label:<7} {_bar_text(used, total)}")
    lines.append(f"running   {len(snap['running'])}")
    for t in snap["running"]:
        rss = "-" if t["rss_mb"] is None else f"{t['rss_mb']:.1f} MB"
        lines.append(f"  {t['tid'][-10:]}  {t.get('name') or t.get('target') or '':<20}  "
                     f"{duration(t['elapsed']):>8}  rss {rss}  pid {t.get('pid')}")
    lines.append(f"queued    {snap['queued_requests']} request(s) waiting, "
                 f"{snap.get('held_requests', 0)} held, {snap['dead_letters']} dead letter(s)")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(snap["tasks"].items())) or "none"
    lines.append(f"tasks     {counts}")
    if snap["recent_failures"]:
        lines.append("recent failures")
        for t in snap["recent_failures"]:
            lines.append(f"  {t['tid'][-10:]}  {t['status']}  {t.get('name') or ''}  "
                         f"{t.get('error') or t.get('reason') or ''}".rstrip())
    return "\n".join(lines) + "\n"


def _rich_frame(snap: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    managers = Table(title=f"managers ({len(snap['managers'])} live)", expand=False,
                     header_style="bold", show_edge=False)
    for col in ("TID", "PID", "HOST", "RESOURCE", "USE", ""):
        managers.add_column(col)
    for m in snap["managers"]:
        for i, (label, used, total) in enumerate(_capacity(m)):
            head = [m["tid"][-10:], str(m["pid"]), str(m["host"])] if i == 0 else ["", "", ""]
            managers.add_row(*head, label, ProgressBar(total=total or 1, completed=used,
                                                       width=24), f"{used:g}/{total:g}")
    running = Table(title=f"running ({len(snap['running'])})", header_style="bold",
                    show_edge=False)
    for col in ("TID", "NAME", "ELAPSED", "RSS MB", "PID", "MANAGER"):
        running.add_column(col)
    for t in snap["running"]:
        running.add_row(t["tid"][-10:], str(t.get("name") or t.get("target") or ""),
                        duration(t["elapsed"]), "-" if t["rss_mb"] is None else f"{t['rss_mb']:.1f}",
                        str(t.get("pid") or ""), str(t.get("manager_tid") or "")[-10:])
    counts = ", ".join(f"{n} {s}" for s, n in sorted(snap["tasks"].items())) or "none"
    parts: list[Any] = [
        f"[bold]weft status[/bold]  {_clock(snap['at'])}   (Ctrl-C to quit)", managers, running,
        f"queued: {snap['queued_requests']} waiting, {snap.get('held_requests', 0)} held, "
        f"{snap['dead_letters']} dead letter(s)   "
        f"tasks: {counts}",
    ]
    if snap["recent_failures"]:
        failures = Table(title="recent failures", header_style="bold", show_edge=False)
        for col in ("TID", "STATUS", "NAME", "WHY"):
            failures.add_column(col)
        for t in snap["recent_failures"]:
            failures.add_row(t["tid"][-10:], t["status"], str(t.get("name") or ""),
                             str(t.get("error") or t.get("reason") or ""))
        parts.append(failures)
    return Group(*parts)
