"""How bytes travel inside JSON messages, losslessly. Pure: no I/O.

Task output is bytes (exactly what the process wrote) but broker messages
are JSON text. A chunk that is valid UTF-8 travels as its text, so the
common case stays readable in the broker and in ``--json`` output; any other
chunk travels as base64 and says so with ``"encoding": "base64"``. A large
chunk does not travel inline at all: it is a reference (``"blob"``: sha256
and size) into the blob store (see :mod:`weft.broker.blobs`).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

BASE64 = "base64"
UTF8 = "utf-8"


def encode_bytes(data: bytes) -> dict[str, str]:
    """``{"data": text}`` when ``data`` is UTF-8, else ``{"data": b64, "encoding": "base64"}``."""
    try:
        return {"data": data.decode(UTF8)}
    except UnicodeDecodeError:
        return {"data": base64.b64encode(data).decode("ascii"), "encoding": BASE64}


def decode_bytes(message: dict[str, Any]) -> bytes:
    """The bytes an inline ``data`` field (with its ``encoding``) stands for."""
    data = message.get("data")
    if data is None:
        return b""
    if message.get("encoding") == BASE64:
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError, TypeError):
            return b""
    return str(data).encode(UTF8, "surrogatepass")


def blob_ref(message: dict[str, Any]) -> dict[str, Any] | None:
    """The blob reference a message carries (``{"sha256", "size", ...}``), if any."""
    ref = message.get("blob")
    if isinstance(ref, dict) and isinstance(ref.get("sha256"), str):
        return ref
    return None
