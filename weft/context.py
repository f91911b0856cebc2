"""Where a project's broker lives: the ``.weft/`` directory.

Found like git finds ``.git``: the current directory or its nearest
ancestor, unless ``WEFT_CONTEXT`` names a project directory. Only ``weft
init``, ``weft run`` and ``weft worker start`` (and the client they use)
create one.

``.weft/config.json`` (optional, owner-only) records settings that belong
to the project rather than to one shell, above all its broker: ``{"broker_backend":
"postgres", "broker_target": "<dsn>", "broker_schema": "weft"}``. Every
command, manager and task of the project reads it; ``WEFT_*`` environment
variables override it. Without it the broker is ``.weft/broker.db``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weft.errors import ContextError
from weft.pathsafety import check_weft_dir, open_private
from weft.settings import Settings

WEFT_DIR = ".weft"
BROKER_FILE = "broker.db"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Context:
    root: Path
    settings: Settings

    @property
    def weft_dir(self) -> Path:
        return self.root / WEFT_DIR

    @property
    def broker_path(self) -> Path:
        return self.weft_dir / BROKER_FILE

    @property
    def backend(self) -> str:
        return self.settings.broker_backend

    def describe(self) -> str:
        if self.backend == "postgres":
            from weft.broker.postgres import redact

            return (f"postgres schema {self.settings.broker_schema} "
                    f"at {redact(self.settings.broker_target)}")
        return str(self.broker_path)


def read_config(root: Path) -> dict[str, Any]:
    """The project's recorded settings (empty without a config file)."""
    path = root / WEFT_DIR / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ContextError(f"cannot read {path}: {exc}") from None
    unknown = sorted(set(data) - (set(Settings.names()) - {"context"})) \
        if isinstance(data, dict) else ["(not a JSON object)"]
    if unknown:
        raise ContextError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return data


def write_config(root: Path, values: Mapping[str, Any]) -> Path:
    """Merge ``values`` into the project config (owner-only: a DSN may hold a password)."""
    path = root / WEFT_DIR / CONFIG_FILE
    data = {**read_config(root), **{k: v for k, v in values.items() if v is not None}}
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return path


def _project(root: Path, settings: Settings | None) -> Context:
    """The context at ``root``: explicit settings win, else config file + environment."""
    check_weft_dir(root / WEFT_DIR)  # symlinks, foreign or shared-writable: refused
    if settings is None:
        settings = Settings.from_env(base=read_config(root))
    return Context(root, settings)


def find_root(start: Path) -> Path | None:
    for candidate in (start, *start.parents):
        if (candidate / WEFT_DIR).is_dir():
            return candidate
    return None


def resolve(
    path: str | os.PathLike[str] | None = None,
    *,
    create: bool = False,
    settings: Settings | None = None,
    announce: bool = False,
) -> Context:
    """Find (or, with ``create``, make) the project context.

    ``path`` wins over ``WEFT_CONTEXT``, which wins over the search from the
    current directory. ``announce`` prints one line on stderr when a new
    context is created, so a user knows where the broker went.
    """
    given = settings
    explicit = path if path is not None else (settings or Settings.from_env()).context
    if explicit is not None:
        root = Path(explicit).expanduser().resolve()
        if (root / WEFT_DIR).is_dir():
            return _project(root, given)
        if not create:
            raise ContextError(f"no weft project at {root} (run 'weft init' there)")
        return _create(root, given, announce)
    cwd = Path.cwd()
    found = find_root(cwd)
    if found is not None:
        return _project(found, given)
    if not create:
        raise ContextError(
            f"no weft project in {cwd} or its parents (run 'weft init', or set WEFT_CONTEXT)"
        )
    return _create(cwd, settings, announce)


def _create(root: Path, settings: Settings | None, announce: bool) -> Context:
    if not root.is_dir():
        raise ContextError(f"cannot create a weft project: {root} is not a directory")
    weft_dir = root / WEFT_DIR
    check_weft_dir(weft_dir)  # before anything is created in a planted directory
    try:
        weft_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(weft_dir, 0o700)
    except OSError as exc:
        raise ContextError(f"cannot create {weft_dir}: {exc.strerror}") from None
    ctx = _project(root, settings)
    if announce:
        print(f"weft: created project context {weft_dir}", file=sys.stderr)
    return ctx


def init(path: str | os.PathLike[str] | None = None) -> tuple[Context, bool]:
    """Create the context. Returns (context, created); the caller opens the broker."""
    root = Path(path).expanduser().resolve() if path else Path.cwd()
    existed = (root / WEFT_DIR).is_dir()
    ctx = _create(root, None, announce=False)
    return ctx, not existed


def with_config(ctx: Context, values: Mapping[str, Any]) -> Context:
    """``ctx`` as it would be with ``values`` recorded (nothing written; bad values raise)."""
    merged = {**read_config(ctx.root), **{k: v for k, v in values.items() if v is not None}}
    return Context(ctx.root, Settings.from_env(base=merged))
