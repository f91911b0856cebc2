"""Function values on the wire: plain JSON, or pickle named in the message.

One module encodes and decodes every value a function task carries (each
argument, the result, the exception it raised), so the client and the task
process agree exactly. JSON stays the wire format that the CLI and other
languages read. A value JSON cannot carry exactly (bytes, tuples, sets,
datetimes, dataclasses, numpy arrays ...) is pickled and wrapped as
``{"$pickle": "<base64>"}``, so every message says how each value was
encoded. A dict that happens to have a ``"$pickle"`` key is itself pickled,
so decoding is never ambiguous.

Encoding returns JSON-ready data; where it travels (inside the message, or
in a blob the message refers to) is the transport's choice, not this
module's. A transport that stores bytes has :func:`dump`, which pickles
into any writable sink (no base64, no copy of a large buffer), and hands a
pickle it read back as :class:`RawPickle`. No I/O of its own, no broker:
``weft.runtime.child`` imports this in the task process, ``weft.client`` in
the caller's.

Trust: unpickling runs code. Whoever can write a project's broker can
already run code through function targets, so pickle adds no new boundary;
a project that must not accept pickle sets ``WEFT_ALLOW_PICKLE=0``.
"""

from __future__ import annotations

import base64
import io
import json
import math
import pickle
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from weft.errors import BrokerError, InvalidSpec

PICKLE_KEY: Final = "$pickle"
Serializer = Literal["auto", "json", "pickle"]
SERIALIZERS: Final = ("auto", "json", "pickle")
PICKLE_OFF: Final = "pickle is turned off in this project (WEFT_ALLOW_PICKLE=0)"


class RawPickle:
    """A pickle as raw bytes (read from a blob), not yet loaded: :func:`decode` loads it."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = data

    def envelope(self) -> dict[str, str]:
        """The same value as a message carries it inline: ``{"$pickle": "<base64>"}``."""
        return {PICKLE_KEY: base64.b64encode(self.data).decode("ascii")}


class StopWriting(Exception):  # noqa: N818 - an instruction to the pickler, not a failure of it
    """A sink given to :func:`dump` raises this (or a subclass) to abandon the value;
    :func:`dump` then never retries it another way."""


def is_plain(value: Any) -> bool:
    """Does ``value`` survive a JSON round trip exactly (same types, same values)?"""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if item is None or kind in (bool, int, str):
            continue
        if kind is float:
            if not math.isfinite(item):
                return False
            continue
        if kind is list:
            stack.extend(item)
            continue
        if kind is dict:
            if PICKLE_KEY in item or not all(type(k) is str for k in item):
                return False
            stack.extend(item.values())
            continue
        return False
    return True


def is_pickled(value: Any) -> bool:
    """Is ``value`` an encoded (pickled) value, as :func:`encode` writes it?"""
    return type(value) is dict and len(value) == 1 and isinstance(value.get(PICKLE_KEY), str)


def encode(value: Any, *, serializer: Serializer = "auto", field: str = "value",
           allow_pickle: bool = True) -> Any:
    """``value`` as JSON-ready data: itself when plain JSON, else a pickled envelope.

    ``serializer="json"`` refuses what JSON cannot carry exactly;
    ``"pickle"`` pickles even plain values. Anything that cannot be encoded
    is InvalidSpec naming ``field``.
    """
    if serializer not in SERIALIZERS:
        raise InvalidSpec(f"serializer: must be one of {', '.join(SERIALIZERS)}, not {serializer!r}")
    if serializer != "pickle" and is_plain(value):
        return value
    if serializer == "json":
        raise InvalidSpec(f"{field}: a {_kind(value)} is not plain JSON; "
                          "use serializer='pickle' (or 'auto') to send it")
    if not allow_pickle:
        raise InvalidSpec(f"{field}: a {_kind(value)} needs pickle, but {PICKLE_OFF}")
    return {PICKLE_KEY: base64.b64encode(dumps(value, field=field)).decode("ascii")}


def decode(value: Any, *, allow_pickle: bool = True, field: str = "value") -> Any:
    """The value :func:`encode` was given (plain values pass through), or the
    value a :class:`RawPickle` holds."""
    raw = type(value) is RawPickle
    if not raw and not is_pickled(value):
        return value
    if not allow_pickle:
        raise InvalidSpec(f"{field}: the value is pickled, but {PICKLE_OFF}")
    try:
        return pickle.loads(value.data if raw else base64.b64decode(value[PICKLE_KEY]))
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is one clear error
        raise InvalidSpec(f"{field}: cannot unpickle the value: {type(exc).__name__}: {exc}") from None


def to_bytes(encoded: Any) -> tuple[Literal["json", "pickle"], bytes]:
    """An encoded value as raw bytes and their kind, for a transport that stores
    bytes (a blob): the pickle itself, not its base64 form, or the JSON text."""
    if is_pickled(encoded):
        return "pickle", base64.b64decode(encoded[PICKLE_KEY])
    return "json", json.dumps(encoded, separators=(",", ":")).encode()


def from_bytes(kind: str, data: bytes) -> Any:
    """The encoded value :func:`to_bytes` split (decode it with :func:`decode`)."""
    if kind == "pickle":
        return {PICKLE_KEY: base64.b64encode(data).decode("ascii")}
    return json.loads(data)


def encode_call(args: Sequence[Any], kwargs: Mapping[str, Any], *,
                serializer: Serializer = "auto", allow_pickle: bool = True,
                ) -> tuple[list[Any], dict[str, Any], Literal["json", "pickle"]]:
    """A function call's arguments as JSON-ready data, and the TaskSpec ``serializer``.

    ``"auto"`` (the Python API's default) marks the task ``pickle`` when the
    project allows it, so the result may come back pickled too, and pickles
    only the arguments that are not plain JSON; ``"json"`` keeps every value
    (the result included) plain JSON, as the CLI and other languages do.
    """
    if serializer not in SERIALIZERS:
        raise InvalidSpec(f"serializer: must be one of {', '.join(SERIALIZERS)}, not {serializer!r}")
    if serializer == "pickle" and not allow_pickle:
        raise InvalidSpec(f"serializer: 'pickle' was asked for, but {PICKLE_OFF}")
    wire: Literal["json", "pickle"] = "pickle" if serializer != "json" and allow_pickle else "json"
    encoded_args = [encode(a, serializer=serializer, field=f"args[{i}]", allow_pickle=allow_pickle)
                    for i, a in enumerate(args)]
    encoded_kwargs = {k: encode(v, serializer=serializer, field=f"kwargs[{k!r}]", allow_pickle=allow_pickle)
                      for k, v in kwargs.items()}
    return encoded_args, encoded_kwargs, wire


# What a sink raises when it cannot take more (the cap, a full disk, the blob store
# unreachable): never a reason to pickle the value another way.
_SINK_FAILURES = (StopWriting, OSError, BrokerError)


class _Buffer(io.BytesIO):
    def restart(self) -> None:
        self.seek(0)
        self.truncate()


def dumps(value: Any, *, field: str = "value") -> bytes:
    """Pickle ``value``; fall back to cloudpickle (if installed) for lambdas and closures.

    Functions and classes defined in the script being run (``__main__``)
    are pickled as references to the script's own module, which the task
    imports from its working directory (see :func:`load_main`).
    """
    buffer = _Buffer()
    dump(value, buffer, field=field)
    return buffer.getvalue()


def dump(value: Any, sink: Any, *, field: str = "value") -> None:
    """Pickle ``value`` into ``sink`` as :func:`dumps` would, streaming.

    ``sink`` has ``write(bytes-like)`` and ``restart()`` (forget what was
    written: the cloudpickle fallback starts again). The C pickler hands a
    large ``bytes`` or array buffer to ``write`` as it is, uncopied. A sink
    that raises :class:`StopWriting`, OSError or BrokerError (the blob store
    failed) ends the pickling there: that error propagates.
    """
    try:
        _Pickler(sink, _main_module()).dump(value)
        return
    except _SINK_FAILURES:
        raise
    except Exception as exc:  # noqa: BLE001 - pickle raises many kinds
        first = exc
    sink.restart()
    try:
        import cloudpickle
    except ImportError:
        hint = ""
        if "<" in getattr(value, "__qualname__", ""):
            hint = ("; lambdas, closures and local functions need the 'cloudpickle' extra "
                    "(pip install 'weft[cloudpickle]')")
        raise InvalidSpec(f"{field}: cannot pickle a {_kind(value)} ({_why(first)}){hint}") from None
    try:
        cloudpickle.dump(value, sink, protocol=pickle.HIGHEST_PROTOCOL)
    except _SINK_FAILURES:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InvalidSpec(f"{field}: cannot pickle a {_kind(value)} ({_why(exc)})") from None


def load_main(module: str, qualname: str) -> Any:
    """The object ``qualname`` of the script module ``module`` (see :func:`dumps`)."""
    import importlib

    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


class _Pickler(pickle.Pickler):
    """Pickles ``__main__`` functions and classes as references to the script's module."""

    def __init__(self, file: Any, main_module: str | None) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.main_module = main_module

    def reducer_override(self, obj: Any) -> Any:
        if (self.main_module and getattr(obj, "__module__", None) == "__main__"
                and (isinstance(obj, type) or callable(obj))
                and "<" not in getattr(obj, "__qualname__", "<")):
            try:
                found = load_main("__main__", obj.__qualname__)
            except AttributeError:
                found = None
            if found is obj:
                return load_main, (self.main_module, obj.__qualname__)
        return NotImplemented


def _main_module() -> str | None:
    """The module name a task uses to import the running script, if there is one."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(main_file).stem if main_file else None


def _kind(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
