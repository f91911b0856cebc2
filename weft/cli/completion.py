"""``weft completion bash|zsh|fish``: print the shell completion script.

click generates the scripts; this command only names the shell, so users
need not know click's ``_WEFT_COMPLETE`` variable. The script calls
``weft`` back at each <TAB>, so completions follow the installed version.
"""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_cmd(shell: str) -> None:
    """Print the completion script for SHELL; load it in your shell's startup file.

    \b
      eval "$(weft completion bash)"     # in ~/.bashrc
      eval "$(weft completion zsh)"      # in ~/.zshrc
      weft completion fish > ~/.config/fish/completions/weft.fish
    """
    from click.shell_completion import get_completion_class

    from weft.cli.main import cli

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships all three
        raise click.UsageError(f"no completion for {shell}")
    click.echo(cls(cli, {}, "weft", "_WEFT_COMPLETE").source())
