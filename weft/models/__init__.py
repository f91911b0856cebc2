"""Pydantic models of everything weft writes to the broker. No I/O here."""

from weft.models.messages import (
    CONTROL_COMMANDS,
    ControlReply,
    ControlRequest,
    LogEvent,
    RegistryRecord,
    ResultMessage,
    SpawnRequest,
    StreamChunk,
)
from weft.models.states import TERMINAL, TaskState, can_transition
from weft.models.taskspec import Limits, Resources, RetryPolicy, TaskSpec

__all__ = [
    "CONTROL_COMMANDS",
    "TERMINAL",
    "ControlReply",
    "ControlRequest",
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
