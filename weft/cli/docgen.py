"""Write the CLI reference (docs/cli.md) from the commands' own help text.

``python -m weft.cli.docgen > docs/cli.md``: the reference can then never
disagree with ``--help``; a test checks every command is in it.
"""

from __future__ import annotations

import click

from weft.cli.main import cli

INTRO = """# CLI reference

Generated from the commands' own help (`python -m weft.cli.docgen > docs/cli.md`).

Conventions: every command finds the project (`.weft/`) in the current
directory or its nearest ancestor, or in `WEFT_CONTEXT`. TIDs may be given in
their short form (any tail of at least 6 digits) where unambiguous. `--json` prints
machine-readable output. Errors are one line on stderr; exit codes: 0 success,
1 failure, 2 usage error / invalid input / task can never run, 3 broker error,
4 not found, 5 timed out waiting, 6 no manager available; `weft run` and
`weft result` exit with the task's own code (124 timeout, 128+N killed by
signal N).

Payloads are bytes: `weft run`, `weft result` and `weft task logs` write a
task's stdout and stderr exactly as the task wrote them (binary included),
to their own stdout and stderr, in the order written. In `--json` output a
chunk or stream that is not UTF-8 is base64 and says so (`"encoding":
"base64"`, or `stdout_encoding`/`stderr_encoding`). Outputs and results
larger than the chunk size (`WEFT_CHUNK_KB`, 1024 KiB) are kept in the blob
store, not in broker messages (see docs/operations.md).
"""


def walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path[-1])
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is not None:
                found.extend(walk(sub, [*path, name]))
    return found


def render() -> str:
    parts = [INTRO]
    for path, command in walk(cli, ["weft"])[1:]:
        ctx = click.Context(command, info_name=" ".join(path))
        parts.append(f"## `{' '.join(path)}`\n\n```text\n{command.get_help(ctx).rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render())
