"""Which function targets a manager agrees to run (``WEFT_FUNCTION_ALLOW``).

A function target names any importable callable, so ``os:system`` or
``builtins:eval`` run whatever their arguments say: anyone who can write the
broker can run code as the manager's user (docs/security.md). A project that
wants to narrow this sets an allow-list of target prefixes in the manager's
environment or the project config, e.g. ``WEFT_FUNCTION_ALLOW=mypkg.,tasks.``.
The manager checks every request before anything runs and rejects the ones
outside it, saying why; the Consumer process checks again that the attribute
path did not walk through another module (``mypkg.jobs:os.system``).

Entry forms: ``pkg.`` (a trailing dot) allows the package ``pkg`` and every
module under it; ``mod`` allows that module exactly; ``mod:name`` allows one
target. Command targets are not affected: a project that allows commands
allows everything.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

SETTING = "WEFT_FUNCTION_ALLOW"


def parse(text: str | None) -> tuple[str, ...] | None:
    """The entries of the setting; ``None`` (no allow-list) when unset or blank."""
    if text is None or not text.strip():
        return None
    return tuple(entry.strip() for entry in text.split(",") if entry.strip())


def allowed(target: str, entries: tuple[str, ...]) -> bool:
    module, _, _ = target.partition(":")
    for entry in entries:
        if entry.endswith("."):
            if module == entry[:-1] or module.startswith(entry):
                return True
        elif ":" in entry:
            if target == entry:
                return True
        elif module == entry:
            return True
    return False


def refusal(function: str | None, entries: tuple[str, ...] | None) -> str | None:
    """Why this target may not run here, or ``None`` when it may."""
    if function is None or entries is None or allowed(function, entries):
        return None
    return (f"function target {function!r} is not allowed here: {SETTING} permits only "
            f"{', '.join(entries)}")


def check_path(target: Any, part: str, entries: tuple[str, ...] | None) -> None:
    """Raise when an attribute path leaves the allowed modules through a module object.

    Called by the Consumer process for each step of ``mod:a.b.c``.
    """
    if entries is None or not isinstance(target, ModuleType):
        return
    if not allowed(target.__name__, entries):
        raise PermissionError(f"{target.__name__!r} reached through {part!r} is not allowed "
                              f"by {SETTING}")
