"""Shared CLI helpers: opening the client, JSON output, tables, times."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from weft.client.client import WeftClient


_ANNOUNCED: set[str] = set()


def client(*, create: bool = False, auto_start: bool = True) -> WeftClient:
    from weft.client.client import WeftClient
    from weft.client.polling import short_lived

    short_lived()  # a command's waits are mostly short: no ctypes for those
    c = WeftClient(create=create, announce=create, auto_start=auto_start)
    c.on_broker_outage = lambda line: click.echo(f"weft: {line}", err=True)
    announce_parent(c.context.root)
    return c


def announce_parent(root: Any) -> None:
    """Say once on stderr when the project was found in a parent directory,
    so nobody writes to a broker they did not know they were using."""
    import os
    from pathlib import Path

    if os.environ.get("WEFT_CONTEXT") or str(root) in _ANNOUNCED:
        return
    _ANNOUNCED.add(str(root))
    if Path(root) != Path.cwd().resolve():
        click.echo(f"weft: using project {root}", err=True)


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
    # Piped output is read by people too (and by grep): do not squeeze it to 80 columns.
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200).print(tbl)


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


def write_stream(stream: str, data: bytes | str) -> None:
    """Write a task's bytes, as they are, to our stdout or stderr, and flush.

    Flushing each chunk keeps the order of the two streams when both go to
    one place (``2>&1``).
    """
    out = sys.stdout if stream == "stdout" else sys.stderr
    out.flush()
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    out.buffer.write(raw)
    out.buffer.flush()


timeout_option = click.option("--timeout", type=click.FloatRange(min=0), default=None,
                              help="Give up after this many seconds.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def parse_value(text: str) -> Any:
    """JSON when it parses, else the plain string (so --arg 3 is 3, --arg hi is 'hi')."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(pairs: tuple[str, ...], what: str, *, json_values: bool = False) -> dict[str, Any]:
    """``KEY=VALUE`` options (``what`` names the flag) as a dict; values are JSON
    when ``json_values`` and that parses. click.BadParameter for a bad pair."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=what)
        out[key] = parse_value(value) if json_values else value
    return out
