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
@list_app.command("ops")
def list_ops() -> None:
    """List the registered ops with their kind and hyperparameters."""
    import dataclasses

    from rich.table import Table

    import augmentgen.ops  # noqa: F401  (fills the registry)
    from augmentgen.core.registry import OPS

    table = Table("name", "kind", "hyperparameters (defaults)")
    for name, cls in OPS.items():
        fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls) if f.name not in ("p", "same_on_batch"))
        table.add_row(name, cls.kind, fields)
    console.print(table)


@app.command()
def preview(
    pipeline_file: Annotated[Path, typer.Argument(help="A pipeline YAML, or a recipe YAML with a 'pipeline:' section.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path("preview.png"),
    n: Annotated[int, typer.Option(help="Augmented draws per image.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the draws.")] = 0,
    images: Annotated[str, typer.Option(help="Comma-separated scikit-image photos.")] = "astronaut,chelsea,coffee",
    size: Annotated[int, typer.Option(help="Side of the input images in pixels.")] = 224,
) -> None:
    """Write a PNG grid: each photo, then N seeded augmented draws of it."""
    from PIL import Image

    import augmentgen.ops  # noqa: F401
    from augmentgen.data.photos import load_photo
    from augmentgen.pipeline import Pipeline
    from augmentgen.pipeline.preview import preview_grid

    try:
        pipe = Pipeline.from_yaml(pipeline_file)
        photos = [load_photo(name.strip(), size) for name in images.split(",") if name.strip()]
        grid = preview_grid(photos, pipe, n=n, seed=seed)
    except (ValueError, TypeError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out)
    console.print(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]}, {len(photos)} images x {n} draws)")


@bench_app.command("ops")
def bench_ops(
    quick: Annotated[bool, typer.Option("--quick", help="Fewer images per measurement.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    suite: Annotated[str, typer.Option(help="Which suite: 'classic'.")] = "classic",
) -> None:
    """Images/s of the default pipeline vs albumentations, torchvision v2 and kornia, in one run."""
    from augmentgen.bench.ops import run_ops_benchmark

    results = run_ops_benchmark(quick=quick, suite=suite, log=None if as_json else console.print)
    if as_json:
        print(json.dumps(results, indent=2))



# ---- generators and training ----------------------------------------------------------


# ---- shards ---------------------------------------------------------------------------


# ---- checks ---------------------------------------------------------------------------


# ---- recipes and the main job ---------------------------------------------------------


def main() -> None:
    app()


if __name__ == "__main__":
    main()
