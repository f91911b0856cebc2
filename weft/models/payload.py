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


# Bytes JSON writes as a 6-character escape (\u0000): all control bytes but tab, LF, CR.
_ESCAPED = bytes(b for b in range(32) if b not in (9, 10, 13))
_KEPT = bytes(b for b in range(256) if b not in _ESCAPED)


def encode_bytes(data: bytes) -> dict[str, str]:
    """``{"data": text}`` when ``data`` is UTF-8 text, else ``{"data": b64, "encoding": "base64"}``.

    UTF-8 full of control bytes (NULs, say) is base64 too: JSON would spell
    each as six characters, and base64 costs at most four for three.
    """
    escaped = len(data.translate(None, _KEPT))  # deleting the rest leaves the escaped
    if escaped * 16 <= len(data):
        try:
            return {"data": data.decode(UTF8)}
        except UnicodeDecodeError:
            pass
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
