"""The layering rules of ARCHITECTURE.md §10, checked on the source.

Only weft/broker imports simplebroker; only weft/resources imports psutil
and pynvml; only weft/cli imports rich (and click); only weft/metrics imports
prometheus_client; weft/models does no I/O
and imports nothing of weft above it; lower layers never import higher ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "weft"

OWNERS = {
    "simplebroker": "broker",
    "simplebroker_pg": "broker",
    "psycopg": "broker",
    "psutil": "resources",
    "pynvml": "resources",
    "rich": "cli",
    "click": "cli",
    "prometheus_client": "metrics",
}
# layer -> weft subpackages it must not import
FORBIDDEN = {
    "models": {"broker", "runtime", "resources", "client", "cli"},
    "broker": {"runtime", "resources", "client", "cli"},
    "resources": {"broker", "runtime", "client", "cli"},
    "runtime": {"client", "cli"},
    "client": {"cli"},
    "metrics": {"client", "cli"},
    "jobs": {"cli"},
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _layer(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else "top"


SOURCES = sorted(PKG.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PKG)))
def test_layering(path: Path) -> None:
    layer = _layer(path)
    for name in _imports(path):
        top = name.split(".")[0]
        owner = OWNERS.get(top)
        if owner is not None:
            assert layer == owner, f"{path.relative_to(PKG)} imports {top} (only weft/{owner} may)"
        if top == "weft" and "." in name:
            sub = name.split(".")[1]
            assert sub not in FORBIDDEN.get(layer, set()), (
                f"{path.relative_to(PKG)} ({layer}) imports weft.{sub}, a higher layer")


def test_every_module_has_a_docstring() -> None:
    missing = [str(p.relative_to(PKG)) for p in SOURCES
               if p.stat().st_size > 0 and ast.get_docstring(ast.parse(p.read_text())) is None]
    assert missing == []


def test_cli_reference_documents_every_command() -> None:
    from weft.cli.docgen import walk
    from weft.cli.main import cli

    text = (PKG.parent / "docs" / "cli.md").read_text()
    missing = [" ".join(path) for path, _ in walk(cli, ["weft"])[1:]
               if f"## `{' '.join(path)}`" not in text]
    assert missing == [], "regenerate: python -m weft.cli.docgen > docs/cli.md"
