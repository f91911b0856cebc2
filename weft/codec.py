"""Reading weft's JSON messages back: one tolerant loader for every reader.

Queues can hold anything an operator wrote by hand; a reader that meets a
body that is not a JSON object skips it instead of failing.
"""

from __future__ import annotations

import json
from typing import Any


def loads_object(body: str) -> dict[str, Any] | None:
    """The JSON object in ``body``, or None when it is not one."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None
