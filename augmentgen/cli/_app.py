"""The typer app the command modules add to, and what they share: the console, errors, ``--set``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

import augmentgen

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Augmentations and generators for training data.")
list_app = typer.Typer(no_args_is_help=True, help="List registered things.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks against the peers, measured in one run.")
app.add_typer(list_app, name="list")
app.add_typer(bench_app, name="bench")
console = Console()

# the --set option of every recipe command
SetOption = Annotated[
    Optional[list[str]], typer.Option("--set", help="Override a recipe field: a.b.c=value (repeatable).")
]


@contextmanager
def exit_on(*errors: type[BaseException], code: int = 2) -> Iterator[None]:
    """Turn ``errors`` into ``error: MESSAGE`` and exit status ``code`` (2: bad input).

    The library's errors name what is wrong and where; the command adds no traceback to them.
    """
    try:
        yield
    except errors as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(code) from e


@contextmanager
def on_interrupt(hint: str) -> Iterator[None]:
    """Ctrl-C: ``interrupted: HINT`` and exit status 130 (128 + SIGINT), instead of a traceback.

    The library writes every output whole under a temporary name or not at all, so what is
    interrupted is lost and what finished stays; the hint says how to go on.
    """
    try:
        yield
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted:[/yellow] {hint}")
        raise typer.Exit(130) from None


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` and return the exit to raise."""
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def load_recipe_or_exit(recipe: Path, set_: list[str] | None) -> Any:
    from augmentgen.recipes import load_recipe

    with exit_on(ValueError):
        return load_recipe(recipe, set_ or [])


def _version(value: bool) -> None:
    if value:
        console.print(f"augmentgen {augmentgen.__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
