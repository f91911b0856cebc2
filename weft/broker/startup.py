"""Keeping the import of simplebroker cheap for short commands.

simplebroker's backend-plugin module runs ``from importlib import metadata``
at import time, though it uses it only to find a backend other than SQLite
(an entry-point scan). Importing ``importlib.metadata`` pulls in ``email``,
``zipfile``, ``csv`` and more: about 12 ms of a 150 ms ``weft run``.
:func:`defer_importlib_metadata` puts a lazy module in its place (the
standard library's :class:`importlib.util.LazyLoader`): the name resolves at
once, and the real module loads on first use, e.g. when a PostgreSQL
project's backend plugin is looked up.
"""

from __future__ import annotations

import sys


def defer_importlib_metadata() -> None:
    """Make ``importlib.metadata`` load on first attribute use (once; no-op if loaded)."""
    if "importlib.metadata" in sys.modules:
        return
    import importlib
    import importlib.util

    spec = importlib.util.find_spec("importlib.metadata")
    if spec is None or spec.loader is None:
        return
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["importlib.metadata"] = module
    loader.exec_module(module)
    # ``from importlib import metadata`` reads the package attribute: set it, so
    # the import system does not look inside (and so load) the lazy module.
    importlib.metadata = module
