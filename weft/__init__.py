"""weft: durable, observable, resource-aware process execution.

Everything public is importable from here (``from weft import WeftClient,
TaskSpec, Result, TaskFailed``) and listed in ``__all__``; other modules are
internal. Names are loaded lazily so that ``weft --help`` and short CLI
commands do not pay for pydantic and the broker until they need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AmbiguousTid",
    "AsyncTask",
    "AsyncWeftClient",
    "BrokenTask",
    "BlobError",
    "BrokerError",
    "ContextError",
    "CurrentTask",
    "InvalidSpec",
    "Limits",
    "ManagerUnavailable",
    "NotFound",
    "Resources",
    "Result",
    "RetryPolicy",
    "Task",
    "TaskFailed",
    "TaskRejected",
    "TaskSpec",
    "UsageError",
    "WaitTimeout",
    "WeftClient",
    "WeftError",
    "WeftExecutor",
    "WorkerInfo",
    "__version__",
    "current_task",
]

_LAZY = {
    "WeftClient": "weft.client.client",
    "Task": "weft.client.task",
    "Result": "weft.client.result",
    "current_task": "weft.client.current",
    "CurrentTask": "weft.client.current",
    "WorkerInfo": "weft.client.workers",
    "WeftExecutor": "weft.client.executor",
    "AsyncWeftClient": "weft.client.async_client",
    "AsyncTask": "weft.client.async_client",
    "BrokenTask": "weft.client.executor",
    "TaskSpec": "weft.models.taskspec",
    "Resources": "weft.models.taskspec",
    "Limits": "weft.models.taskspec",
    "RetryPolicy": "weft.models.taskspec",
}
_ERRORS = {
    "AmbiguousTid", "BlobError", "BrokerError", "ContextError", "InvalidSpec", "ManagerUnavailable",
    "NotFound", "TaskFailed", "TaskRejected", "UsageError", "WaitTimeout", "WeftError",
}

if TYPE_CHECKING:
    from weft.client.async_client import AsyncTask, AsyncWeftClient
    from weft.client.client import WeftClient
    from weft.client.current import CurrentTask, current_task
    from weft.client.executor import BrokenTask, WeftExecutor
    from weft.client.result import Result
    from weft.client.task import Task
    from weft.client.workers import WorkerInfo
    from weft.errors import (
        AmbiguousTid,
        BlobError,
        BrokerError,
        ContextError,
        InvalidSpec,
        ManagerUnavailable,
        NotFound,
        TaskFailed,
        TaskRejected,
        UsageError,
        WaitTimeout,
        WeftError,
    )
    from weft.models.taskspec import Limits, Resources, RetryPolicy, TaskSpec


def __getattr__(name: str) -> Any:
    import importlib

    if name in _ERRORS:
        return getattr(importlib.import_module("weft.errors"), name)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'weft' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
