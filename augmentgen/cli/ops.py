"""Op commands: ``preview``, ``list ops`` and ``bench ops``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from augmentgen.cli._app import app, bench_app, console, exit_on, list_app


@app.command()
def preview(
    pipeline_file: Annotated[Path, typer.Argument(help="A pipeline YAML, or a recipe YAML with a 'pipeline:' section.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path("preview.png"),
    n: Annotated[int, typer.Option(help="Augmented draws per image.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the draws.")] = 0,
    images: Annotated[
        str,
        typer.Option(
            help="Comma-separated inputs: scikit-image photo names, image files, or folders (their first "
            "images, --per-folder of each, in name order and subfolders)."
        ),
    ] = "astronaut,chelsea,coffee",
    size: Annotated[int, typer.Option(help="Side of the input images in pixels (0: as they are).")] = 224,
    per_folder: Annotated[int, typer.Option(min=1, help="Images taken from each folder in --images.")] = 4,
) -> None:
    """Write a PNG grid: each photo (or your own images), then N seeded augmented draws of it."""
    from PIL import Image

    import augmentgen.ops  # noqa: F401
    from augmentgen.data.photos import preview_inputs
    from augmentgen.pipeline import Pipeline
    from augmentgen.pipeline.preview import preview_grid

    with exit_on(ValueError, TypeError, OSError):
        pipe = Pipeline.from_yaml(pipeline_file)
        names = [name.strip() for name in images.split(",") if name.strip()]
        photos = preview_inputs(names, size or None, per_folder=per_folder)
        grid = preview_grid(photos, pipe, n=n, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out)
    console.print(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]}, {len(photos)} images x {n} draws)")


@list_app.command("ops")
def list_ops() -> None:
    """List the registered ops with their kind and hyperparameters, then the policies (trivial_augment, ...)."""
    import dataclasses

    from rich.table import Table

    from augmentgen.core.registry import OPS
    from augmentgen.pipeline.policies import POLICIES  # imports the ops, which fills the registry

    table = Table("name", "kind", "hyperparameters (defaults)")
    for name, cls in OPS.items():
        fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls) if f.name not in ("p", "same_on_batch"))
        table.add_row(name, cls.kind, fields)
    for name, policy in sorted(POLICIES.items()):
        fields = ", ".join(f"{k}={v!r}" for k, v in policy().to_dict().items() if k != "name")
        table.add_row(name, "policy", fields)
    console.print(table)


@bench_app.command("ops")
def bench_ops(
    quick: Annotated[bool, typer.Option("--quick", help="Fewer images per measurement.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    suite: Annotated[str, typer.Option(help="Which suite: 'classic' or 'weather'.")] = "classic",
) -> None:
    """Images/s of the default pipeline vs albumentations, torchvision v2 and kornia, in one run."""
    from augmentgen.bench.ops import run_ops_benchmark

    if suite == "weather":  # weather/lighting ops per sample vs albumentations (augmentgen.bench.weather)
        from augmentgen.bench.weather import run_weather_benchmark

        results = run_weather_benchmark(quick=quick, log=None if as_json else typer.echo)  # rows wider than rich wraps
    else:
        results = run_ops_benchmark(quick=quick, suite=suite, log=None if as_json else console.print)
    if as_json:
        print(json.dumps(results, indent=2))
