"""The `augmentgen` command: parse, load recipe, call library functions, show progress.

Each concern adds its commands in its own section below; keep command bodies thin.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

import augmentgen

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Augmentations and generators for training data.")
list_app = typer.Typer(no_args_is_help=True, help="List registered things.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks against the peers, measured in one run.")
app.add_typer(list_app, name="list")
app.add_typer(bench_app, name="bench")
console = Console()


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


# ---- ops and pipeline (issue: core ops) -------------------------------------------------


# ---- generators and training ----------------------------------------------------------


# ---- shards ---------------------------------------------------------------------------


# ---- checks ---------------------------------------------------------------------------


# ---- recipes and the main job ---------------------------------------------------------


def main() -> None:
    app()


if __name__ == "__main__":
    main()
