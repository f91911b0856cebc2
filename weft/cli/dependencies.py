"""The ``--after``, ``--after-any`` and ``--after-finished`` options of ``weft run``.

Kept here so ``weft run`` gains them with two lines: a decorator that adds
the options and :func:`after_fields`, which turns them into the TaskSpec's
``after``/``after_mode`` (full TIDs; an unknown one is exit 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

_FLAGS = (("after", "all"), ("after_any", "any"), ("after_finished", "finished"))


def after_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the three dependency options (repeatable, each takes TID[,TID...])."""
    fn = click.option("--after-finished", "after_finished", multiple=True, metavar="TID[,TID]",
                      help="Start once every TID has ended, whatever the outcome.")(fn)
    fn = click.option("--after-any", "after_any", multiple=True, metavar="TID[,TID]",
                      help="Start once any one TID completed; cancelled if none does.")(fn)
    fn = click.option("--after", "after", multiple=True, metavar="TID[,TID]",
                      help="Wait in 'queued' until every TID completed; cancelled "
                           "(with the reason) as soon as one fails. Repeatable.")(fn)
    return fn


def after_fields(opts: dict[str, Any], client: Callable[[], Any]) -> dict[str, Any]:
    """``{"after": [...], "after_mode": ...}`` from the options (popped), or ``{}``."""
    from weft.errors import UsageError

    given = [(mode, opts.pop(key, ()) or ()) for key, mode in _FLAGS]
    used = [(mode, values) for mode, values in given if values]
    if not used:
        return {}
    if len(used) > 1:
        raise UsageError("give only one of --after, --after-any, --after-finished")
    mode, values = used[0]
    fields: dict[str, Any] = {"after": client().resolve_after(list(values))}
    if mode != "all":
        fields["after_mode"] = mode
    return fields
