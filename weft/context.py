"""Where a project's broker lives: the ``.weft/`` directory.

Found like git finds ``.git``: the current directory or its nearest
ancestor, unless ``WEFT_CONTEXT`` names a project directory. Only ``weft
init``, ``weft run`` and ``weft worker start`` (and the client they use)
create one.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from weft.errors import ContextError
from weft.settings import Settings

WEFT_DIR = ".weft"
BROKER_FILE = "broker.db"


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
            return f"postgres schema {self.settings.broker_schema}"
        return str(self.broker_path)


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
    settings = settings or Settings.from_env()
    explicit = path if path is not None else settings.context
    if explicit is not None:
        root = Path(explicit).expanduser().resolve()
        if (root / WEFT_DIR).is_dir():
            return Context(root, settings)
        if not create:
            raise ContextError(f"no weft project at {root} (run 'weft init' there)")
        return _create(root, settings, announce)
    cwd = Path.cwd()
    found = find_root(cwd)
    if found is not None:
        return Context(found, settings)
    if not create:
        raise ContextError(
            f"no weft project in {cwd} or its parents (run 'weft init', or set WEFT_CONTEXT)"
        )
    return _create(cwd, settings, announce)


def _create(root: Path, settings: Settings, announce: bool) -> Context:
    if not root.is_dir():
        raise ContextError(f"cannot create a weft project: {root} is not a directory")
    weft_dir = root / WEFT_DIR
    try:
        weft_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(weft_dir, 0o700)
    except OSError as exc:
        raise ContextError(f"cannot create {weft_dir}: {exc.strerror}") from None
    ctx = Context(root, settings)
    if announce:
        print(f"weft: created project context {weft_dir}", file=sys.stderr)
    return ctx


def init(path: str | os.PathLike[str] | None = None) -> tuple[Context, bool]:
    """Create the context (and the broker file). Returns (context, created)."""
    settings = Settings.from_env()
    root = Path(path).expanduser().resolve() if path else Path.cwd()
    existed = (root / WEFT_DIR).is_dir()
    ctx = _create(root, settings, announce=False)
    return ctx, not existed
