"""Pydantic models of everything weft writes to the broker. No I/O here.

Names load on first use: ``weft.models.states`` is plain Python, and a
process that only needs the lifecycle table (the CLI waiting on a result)
should not pay for importing pydantic and building schemas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "CONTROL_COMMANDS": "weft.models.messages",
    "ControlReply": "weft.models.messages",
    "ControlRequest": "weft.models.messages",
    "JobRecord": "weft.models.messages",
    "LogEvent": "weft.models.messages",
    "RegistryRecord": "weft.models.messages",
    "ResultMessage": "weft.models.messages",
    "SpawnRequest": "weft.models.messages",
    "StreamChunk": "weft.models.messages",
    "TERMINAL": "weft.models.states",
    "TaskState": "weft.models.states",
    "can_transition": "weft.models.states",
    "Limits": "weft.models.taskspec",
    "Resources": "weft.models.taskspec",
    "RetryPolicy": "weft.models.taskspec",
    "TaskSpec": "weft.models.taskspec",
}

__all__ = [
    "CONTROL_COMMANDS",
    "TERMINAL",
    "ControlReply",
    "ControlRequest",
    "JobRecord",
    "Limits",
    "LogEvent",
    "RegistryRecord",
    "Resources",
    "ResultMessage",
    "RetryPolicy",
    "SpawnRequest",
    "StreamChunk",
    "TaskSpec",
    "TaskState",
    "can_transition",
]

if TYPE_CHECKING:
    from weft.models.messages import (
        CONTROL_COMMANDS,
        ControlReply,
        ControlRequest,
        JobRecord,
        LogEvent,
        RegistryRecord,
        ResultMessage,
        SpawnRequest,
        StreamChunk,
    )
    from weft.models.states import TERMINAL, TaskState, can_transition
    from weft.models.taskspec import Limits, Resources, RetryPolicy, TaskSpec


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'weft.models' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
