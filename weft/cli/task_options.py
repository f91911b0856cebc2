"""The task options ``weft run`` and ``weft submit`` share, and the TaskSpec fields they make.

One definition of each option (its name, type and range), so the two commands
cannot drift apart; only the help differs, since ``weft submit`` applies every
option to each task it queues. :func:`spec_fields` turns the parsed options,
these and ``weft run``'s own (``--vram``, ``--retry-delay``...), into TaskSpec
fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from weft.cli.common import parse_pairs

# (flag and parameter name, click keywords, help for one task, help for every task)
_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any], str, str], ...] = (
    (("--name",), {},
     "A name for the task (shown in lists and process titles).",
     "A name for every task."),
    (("--env", "env"), {"multiple": True, "metavar": "K=V"},
     "Set an environment variable; repeatable. Stored in clear in the broker: "
     "use --secret for secrets.",
     "Set an environment variable in every task; repeatable."),
    (("--secret", "secrets"), {"multiple": True, "metavar": "NAME"},
     "Pass environment variable NAME, its value read by the manager from .weft/secrets "
     "or its own environment, never stored in the broker; repeatable.",
     "Pass environment variable NAME, read by the manager (see 'weft run --secret'); "
     "repeatable."),
    (("--cwd",), {"type": click.Path(file_okay=False)},
     "Working directory (default: here).",
     "Working directory (default: here)."),
    (("--timeout",), {"type": click.FloatRange(min=0, min_open=True)},
     "Kill the task after S seconds (exit 124).",
     "Kill a task after S seconds (exit 124)."),
    (("--cpus",), {"type": click.FloatRange(min=0)},
     "CPUs to reserve.",
     "CPUs to reserve per task."),
    (("--memory", "memory_mb"), {"type": click.IntRange(min=0)},
     "Memory to reserve, MB (also the enforced limit).",
     "Memory to reserve per task, MB."),
    (("--gpus",), {"type": click.IntRange(min=0)},
     "GPUs to reserve.",
     "GPUs to reserve per task."),
    (("--priority",), {"type": click.IntRange(-1000, 1000)},
     "Higher runs first (default 0).",
     "Higher runs first (default 0)."),
    (("--retries",), {"type": click.IntRange(0, 100)},
     "Retry a failed attempt up to N times.",
     "Retry a failed attempt up to N times."),
    (("--label", "labels"), {"multiple": True, "metavar": "K=V"},
     "Attach a label; repeatable.",
     "Attach a label to every task; repeatable."),
    (("--group",), {},
     "Put the task in this group (see 'weft group'); default: 'default'.",
     "Put every task in this group (see 'weft group')."),
)


def task_options(*, each: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the shared task options, in the order above; ``each``: word the help
    for a command that queues many tasks (``weft submit``)."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        for decls, keywords, one, every in reversed(_OPTIONS):
            fn = click.option(*decls, help=every if each else one, **keywords)(fn)
        return fn

    return add


def spec_fields(opts: dict[str, Any]) -> dict[str, Any]:
    """TaskSpec fields from the task options ``weft run`` and ``weft submit`` share."""
    fields: dict[str, Any] = {}
    for key in ("name", "cwd", "timeout", "priority", "group"):
        if opts.get(key) is not None:
            fields[key] = opts[key]
    if opts.get("env"):
        fields["env"] = parse_pairs(opts["env"], "--env", json_values=False)
    if opts.get("secrets"):
        fields["secrets"] = list(dict.fromkeys(opts["secrets"]))
    if opts.get("labels"):
        fields["labels"] = parse_pairs(opts["labels"], "--label", json_values=False)
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
