"""Who may read a manager's ``/metrics``: an optional bearer token or basic-auth pair.

``weft worker start --metrics-auth-file PATH`` names an owner-only file
(mode 0600 or stricter; a symlink is refused) whose first line that is not
blank or a ``#`` comment is either ``bearer TOKEN`` or ``basic USER:PASSWORD``.
A scrape without the matching ``Authorization`` header gets 401. The
comparison takes constant time. Without the option the endpoint is open,
which is why a non-loopback address is warned about (see server.py).
"""

from __future__ import annotations

import base64
import hmac
import os
import stat
from collections.abc import Callable, Iterable
from typing import Any

from weft.errors import UsageError

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def read_auth_file(path: str) -> str:
    """The ``Authorization`` header value a scrape must send; UsageError says what is wrong."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"--metrics-auth-file {path}: {exc.strerror or exc} "
                         "(symlinks are refused)") from None
    with os.fdopen(fd, encoding="utf-8") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise UsageError(f"--metrics-auth-file {path}: must be a regular file owned by this "
                             "user and readable by nobody else (chmod 600)")
        lines = [ln.strip() for ln in fh.read().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    kind, _, secret = (lines[0] if lines else "").partition(" ")
    secret = secret.strip()
    if kind.lower() == "bearer" and secret:
        return f"Bearer {secret}"
    if kind.lower() == "basic" and ":" in secret:
        return "Basic " + base64.b64encode(secret.encode()).decode()
    raise UsageError(f"--metrics-auth-file {path}: expected a line 'bearer TOKEN' or "
                     "'basic USER:PASSWORD'")


def guarded(app: WSGIApp, expected: str) -> WSGIApp:
    """``app`` behind a check of the ``Authorization`` header."""
    want = expected.encode()
    realm = "Bearer" if expected.startswith("Bearer ") else 'Basic realm="weft metrics"'

    def check(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        got = str(environ.get("HTTP_AUTHORIZATION", "")).encode()
        if hmac.compare_digest(got, want):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                            ("WWW-Authenticate", realm)])
        return [b"unauthorized\n"]

    return check
