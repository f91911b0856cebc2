"""Broker layer: the only package that imports simplebroker.

``Broker``, ``Message`` and ``opened`` are loaded on first use, so a process
that needs only the blob store's files (a task process writing its large
result, see :mod:`weft.runtime.result_blob`) does not pay for importing
simplebroker (about 50 ms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from weft.broker.startup import defer_importlib_metadata

defer_importlib_metadata()  # before simplebroker is imported (see weft.broker.startup)

if TYPE_CHECKING:
    from weft.broker.broker import Broker, Message, opened

__all__ = ["Broker", "Message", "opened"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from weft.broker import broker

        return getattr(broker, name)
    raise AttributeError(f"module 'weft.broker' has no attribute {name!r}")
