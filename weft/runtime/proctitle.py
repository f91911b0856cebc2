"""Setting this process's title (``ps``, ``top``), the one way every weft process does it.

Managers, launchers and task processes all name themselves ``weft:TID:...``
so an operator can tell them apart. Kept in its own module, with nothing but
the standard library at import, because the forked child calls it: a child
must not pay for importing anything it does not use.
"""

from __future__ import annotations


def set_title(title: str) -> None:
    """Set the title; a title is cosmetic, so any failure (no setproctitle) is ignored."""
    try:
        import setproctitle

        setproctitle.setproctitle(title)
    except Exception:  # noqa: BLE001 - a title is cosmetic
        pass
