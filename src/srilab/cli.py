"""The command line: a thin typer layer over the Python API.

Every error a user can cause is a :class:`~srilab.errors.SrilabError`; the CLI prints its one-line
message to stderr and exits with code 2 (no traceback).
"""

from __future__ import annotations

import sys

import typer

from srilab.errors import SrilabError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="srilab: safety science for diffusion and AR LMs.")


@app.command()
def info(
    model: str = typer.Argument(..., help="A model directory, a GGUF file or a hub id (cached)."),
    kind: str | None = typer.Option(None, help="Force 'ar' or 'diffusion' (default: from config.json)."),
    gguf_file: str | None = typer.Option(None, help="GGUF file name inside MODEL (a directory or hub id)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow the checkpoint's own code."),
) -> None:
    """Load a model and describe it (kind, mask id, logits shift, layers, final norm)."""
    from srilab.models import load

    lm = load(model, kind=kind, gguf_file=gguf_file, trust_remote_code=trust_remote_code)
    for key, value in lm.describe().items():
        typer.echo(f"{key:>16}: {value}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``srilab`` script; returns the exit code."""
    try:
        app(args=argv, standalone_mode=False)
    except SrilabError as err:
        typer.echo(f"error: {err}", err=True)
        return err.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except Exception as err:  # click usage errors carry their own exit code
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            return err.exit_code
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

