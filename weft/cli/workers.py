"""``weft worker start|stop|list|status``: managing managers."""

from __future__ import annotations

import time
from typing import Any

import click

from weft.cli.common import ago, client, echo_json, json_option, table


@click.group("worker")
def worker_group() -> None:
    """Start, stop and inspect managers (the processes that run tasks)."""


@worker_group.command("start")
@click.option("--foreground", is_flag=True, help="Run in this terminal instead of detaching.")
@click.option("--idle-timeout", type=click.FloatRange(min=0),
              help="Exit after S idle seconds; 0 = never (default $WEFT_MANAGER_IDLE_TIMEOUT or 600).")
@click.option("--max-concurrency", type=click.IntRange(min=1), help="Run at most N tasks at once.")
@click.option("--grace", type=click.FloatRange(min=0), help="On stop, let tasks finish for S seconds (default 30).")
@click.option("--name", help="A name for this manager.")
@click.option("--cpus", type=click.FloatRange(min=0, min_open=True), help="Offer at most this many CPUs.")
@click.option("--memory", "memory_mb", type=click.IntRange(min=1), help="Offer at most this much memory, MB.")
@click.option("--gpus", type=click.IntRange(min=0), help="Offer at most N GPUs.")
@click.option("--gpu-ids", help="Offer only these GPU indices (comma list).")
@click.option("--max-cpu-percent", type=click.FloatRange(0, 100), help="Defer while host CPU is above this.")
@click.option("--min-free-memory", type=click.IntRange(min=0), help="Defer while free memory (MB) is below this.")
@click.option("--max-gpu-util", type=click.FloatRange(0, 100), help="Skip GPUs busier than this %.")
@click.option("--vram-headroom", type=click.IntRange(min=0), help="MB kept free on every GPU.")
@click.option("--metrics-addr", callback=lambda _c, _p, v: _check_metrics_addr(v),
              help="Serve Prometheus metrics on HOST:PORT or PORT (loopback unless a host is "
                   "given; 0 picks a free port).")
@click.option("--max-broker-outage", type=click.FloatRange(min=0, min_open=True),
              help="Stop (as if told STOP) once the broker has been unreachable this many "
                   "seconds; by default a manager waits out an outage of any length.")
@click.option("--metrics-auth-file", type=click.Path(exists=True, dir_okay=False, resolve_path=True),
              help="Require the scrape's Authorization header: an owner-only file with a line "
                   "'bearer TOKEN' or 'basic USER:PASSWORD'.")
@click.option("--secrets-file", type=click.Path(exists=True, dir_okay=False, resolve_path=True),
              help="Read --secret values from this owner-only NAME=value file "
                   "(default .weft/secrets, then the manager's environment).")
@json_option
def worker_start(foreground: bool, as_json: bool, **options: Any) -> None:
    """Start a manager and print its TID (detached unless --foreground)."""
    gpu_ids = options.pop("gpu_ids", None)
    if gpu_ids:
        try:
            options["gpu_ids"] = [int(x) for x in str(gpu_ids).split(",") if x.strip()]
        except ValueError:
            raise click.BadParameter("expected a comma list of integers", param_hint="--gpu-ids") from None
    if options.get("metrics_addr"):
        from weft.metrics.server import exposure_warning

        warning = exposure_warning(options["metrics_addr"], options.get("metrics_auth_file"))
        if warning:
            click.echo(f"weft: warning: {warning}", err=True)
    c = client(create=True)
    info = c.workers.start(foreground=foreground, **options)
    if as_json:
        echo_json(info.to_dict())
    else:
        click.echo(info.tid)


def _check_metrics_addr(value: str | None) -> str | None:
    """Refuse a bad address before a project or a manager is created."""
    if value is not None:
        from weft.errors import UsageError
        from weft.metrics.server import parse_addr

        try:
            parse_addr(value)
        except UsageError as exc:
            raise click.BadParameter(str(exc).split(": ", 1)[-1], param_hint="--metrics-addr") from None
    return value


@worker_group.command("stop")
@click.argument("tid", required=False)
@click.option("--all", "stop_all", is_flag=True, help="Stop every live manager.")
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for each manager to write 'stopped'.")
@click.option("--force", is_flag=True, help="Kill the manager's process group instead of asking.")
@json_option
def worker_stop(tid: str | None, stop_all: bool, timeout: float, force: bool, as_json: bool) -> None:
    """Stop a manager (TID), or --all: STOP on its control channel, wait for 'stopped'."""
    if tid is None and not stop_all:
        raise click.UsageError("give a manager TID or --all")
    c = client()
    stopped = c.workers.stop(tid, all=stop_all, timeout=timeout, force=force)
    if as_json:
        echo_json([w.to_dict() for w in stopped])
    else:
        for worker in stopped:
            click.echo(f"stopped {worker.tid}")
        if not stopped:
            click.echo("no live manager")


@worker_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include stopped and dead managers.")
@json_option
def worker_list(show_all: bool, as_json: bool) -> None:
    """List live managers (--all adds stopped and dead ones)."""
    workers = client().workers.list(all=show_all)
    if as_json:
        echo_json([w.to_dict() for w in workers])
        return
    if not workers:
        click.echo("no managers" if show_all else "no live managers")
        return
    table(None, ["TID", "STATUS", "PID", "HOST", "RUNNING", "HEARTBEAT"],
          [[w.tid, w.shown_status + (" (broker unreachable)" if w.record.get("broker_outage") else ""),
            w.pid, w.host, (w.record.get("load") or {}).get("running", 0),
            ago(w.record.get("heartbeat_at"))] for w in workers])


@worker_group.command("status")
@click.argument("tid", required=False)
@json_option
def worker_status(tid: str | None, as_json: bool) -> None:
    """One manager in detail: pid, host, uptime, heartbeat age, load, capacity, queues."""
    info = client().workers.status(tid)
    rec = info.record
    if as_json:
        echo_json(info.to_dict())
        return
    up = time.time() - float(rec.get("started_at") or time.time())
    click.echo(f"manager    {info.tid}  ({info.shown_status})")
    click.echo(f"pid        {info.pid} on {info.host}   launcher pid {rec.get('launcher_pid')}")
    click.echo(f"uptime     {up:.0f}s   heartbeat {ago(rec.get('heartbeat_at'))}")
    if rec.get("broker_outage"):
        click.echo(f"broker     {rec['broker_outage']['text']}")
    load = rec.get("load") or {}
    caps = rec.get("capabilities") or {}
    click.echo(f"running    {load.get('running', 0)} of {caps.get('max_concurrency', '?')}")
    if rec.get("metrics_addr"):
        click.echo(f"metrics    http://{rec['metrics_addr']}/metrics")
    if rec.get("containment"):
        box = rec["containment"]
        click.echo(f"contain    {box.get('mechanism')} (layers: {', '.join(box.get('layers') or [])})")
    _capacity_table(caps, load)
    for name, queue in (rec.get("queues") or {}).items():
        click.echo(f"queue      {name:<9} {queue}")


def _capacity_table(caps: dict, load: dict) -> None:
    """Capacity against what running tasks hold (the registry's ``load.reserved``)."""
    reserved = load.get("reserved") or {}
    rows: list[list[object]] = []
    if "max_concurrency" in caps:
        slots = caps["max_concurrency"]
        used = load.get("running", 0)
        rows.append(["task slots", slots, used, slots - used])
    for key, label in (("cpus", "CPUs"), ("memory_mb", "memory MB")):
        if key in caps:
            cap, used = caps[key], reserved.get(key, 0)
            rows.append([label, _num(cap), _num(used), _num(max(0, cap - used))])
    whole = set(reserved.get("exclusive_gpus") or [])
    headroom = int(caps.get("vram_headroom_mb") or 0)
    for gpu in caps.get("gpus") or []:
        index, total = gpu.get("index"), int(gpu.get("memory_mb") or 0)
        label = f"GPU {index} {gpu.get('name', '')} VRAM MB".replace("  ", " ")
        if index in whole:
            rows.append([label, total, "whole card", 0])
            continue
        used = int((reserved.get("vram_mb_by_gpu") or {}).get(str(index), 0))
        rows.append([label, total, used, max(0, total - used - headroom)])
    if rows:
        table(None, ["RESOURCE", "CAPACITY", "RESERVED", "FREE"], rows)


def _num(value: object) -> object:
    return f"{value:g}" if isinstance(value, float) else value
