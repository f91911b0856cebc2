"""Reading weft's JSON messages back: one tolerant loader for every reader.

Queues can hold anything an operator wrote by hand; a reader that meets a
body that is not a JSON object skips it instead of failing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from weft.broker import Broker


def loads_object(body: str) -> dict[str, Any] | None:
    """The JSON object in ``body``, or None when it is not one."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def find_objects(broker: Broker, queue: str, key: str, value: str) -> list[dict[str, Any]]:
    """The JSON objects on ``queue`` whose ``key`` is ``value``, oldest first.

    The broker's substring search (``"key":"value"``, as weft writes its
    compact JSON) narrows the rows; the decoded field decides, so a value
    that merely appears inside another field never matches.
    """
    found = []
    for body, _mid in broker.find_messages(queue, f'"{key}":"{value}"'):
        obj = loads_object(body)
        if obj is not None and obj.get(key) == value:
            found.append(obj)
    return found
