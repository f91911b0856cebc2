"""Shared CLI helpers: opening the client, JSON output, tables, times."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from weft.client.client import WeftClient


def client(*, create: bool = False, auto_start: bool = True) -> WeftClient:
    from weft.client.client import WeftClient

    c = WeftClient(create=create, announce=create, auto_start=auto_start)
    c.on_broker_outage = lambda line: click.echo(f"weft: {line}", err=True)
    return c


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=None, default=str, separators=(",", ":")))


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    tbl = Table(title=title, show_edge=False, header_style="bold")
    for col in columns:
        tbl.add_column(col)
    for row in rows:
        tbl.add_row(*["" if v is None else str(v) for v in row])
    Console(soft_wrap=True).print(tbl)


def ago(ts: float | None) -> str:
    if not ts:
        return "-"
    delta = max(0.0, time.time() - float(ts))
    if delta < 60:
        return f"{delta:.1f}s ago"
    if delta < 3600:
        return f"{delta / 60:.1f}m ago"
    return f"{delta / 3600:.1f}h ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s"
    return f"{seconds / 60:.1f}m"


def write_stream(stream: str, data: str) -> None:
    out = sys.stdout if stream == "stdout" else sys.stderr
    out.write(data)
    out.flush()


timeout_option = click.option("--timeout", type=click.FloatRange(min=0), default=None,
                              help="Give up after this many seconds.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
