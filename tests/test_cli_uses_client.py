"""The CLI is a thin layer over WeftClient: one code path, one set of errors.

Checked on the source: no CLI module imports the broker, the runtime or the
context machinery, or reaches through the client to its broker connection.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parent.parent / "weft" / "cli"
BELOW_THE_CLIENT = ("simplebroker", "weft.broker", "weft.runtime", "weft.context", "weft.settings")


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith(BELOW_THE_CLIENT):
                found.append(f"line {node.lineno}: imports {name}")
        if isinstance(node, ast.Attribute) and node.attr in ("broker", "_broker"):
            found.append(f"line {node.lineno}: uses .{node.attr} (add a client method instead)")
    return found


@pytest.mark.parametrize("path", sorted(CLI.glob("*.py")), ids=lambda p: p.name)
def test_cli_goes_through_the_client(path: Path) -> None:
    assert _violations(path) == []
