"""The task-process side of pickled function calls (TaskSpec ``serializer="pickle"``).

:mod:`weft.runtime.child` runs a function target; when its spec says
``pickle`` it asks this module to decode the arguments and to encode the
exception, all through :mod:`weft.models.values` (the one codec the client
uses too; the result goes through :mod:`weft.runtime.result_blob`). It also
holds the two targets the executor submits for callables that have no
import path (bound methods, partials, lambdas): :func:`apply` calls a
pickled callable, :func:`apply_batch` runs a chunk of ``map`` calls in one
task.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from weft.models import values


def decode_arguments(launch: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The call's positional and keyword arguments, unpickled where pickled."""
    args = [values.decode(a, field=f"args[{i}]") for i, a in enumerate(launch.get("args") or ())]
    kwargs = {k: values.decode(v, field=f"kwargs[{k!r}]")
              for k, v in (launch.get("kwargs") or {}).items()}
    return args, kwargs


def encode_exception(exc: BaseException) -> Any:
    """The raised exception, pickled, or None when it cannot make the round trip."""
    try:
        data = values.encode(exc, serializer="pickle", field="exception")
        pickle.loads(values.dumps(exc))  # some exceptions pickle but cannot be rebuilt
    except Exception:  # noqa: BLE001 - best effort: the error text still travels
        return None
    return data


def apply(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Target for a callable that travels pickled: call it."""
    return fn(*args, **kwargs)


def apply_batch(fn: Callable[..., Any], calls: Sequence[Sequence[Any]]) -> list[Any]:
    """Target for one chunk of ``WeftExecutor.map``: ``fn(*call)`` for each call.

    Returns one ``("ok", value)`` or ``("error", exception, traceback_text)``
    per call, so the caller can raise a failure at the exact item's position
    while keeping the values before it.
    """
    out: list[Any] = []
    for call in calls:
        try:
            out.append(("ok", fn(*call)))
        except Exception as exc:  # noqa: BLE001 - reported per item
            text = traceback.format_exc()
            try:
                pickle.loads(values.dumps(exc))
            except Exception:  # noqa: BLE001
                exc = RuntimeError(f"{type(exc).__name__}: {exc}")
            out.append(("error", exc, text))
            break  # like a failing call in a standard executor's chunk: stop the chunk here
    return out
