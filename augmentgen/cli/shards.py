"""Shard commands: ``generate``, ``verify``, ``export`` and ``bench shards``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from augmentgen.cli._app import app, bench_app, console, exit_on, fail, on_interrupt


class _ShardBar:
    """Rich progress for ``write_shards``: shards done, samples/s, ETA."""

    def __init__(self, progress: Any, samples_per_shard: int) -> None:
        self.progress, self.per_shard = progress, samples_per_shard
        self.task: Any = None
        self.samples, self.t0 = 0, 0.0

    def start(self, todo: int, done: int) -> None:
        import time

        self.t0 = time.perf_counter()
        self.task = self.progress.add_task("shards", total=todo, rate="", done_before=done)

    def _rate(self) -> str:
        import time

        dt = time.perf_counter() - self.t0
        return f"{self.samples / dt:,.0f} samples/s" if dt > 0 else ""

    def shard_done(self, record: Any) -> None:
        self.samples += record.samples
        self.progress.update(self.task, advance=1, rate=self._rate())

    def shard_failed(self, index: int, error: str) -> None:
        self.progress.console.print(f"[red]shard {index} failed:[/red] {error}")
        self.progress.update(self.task, advance=1, rate=self._rate())


@app.command()
def generate(
    recipe: Annotated[
        Path,
        typer.Argument(help="Recipe YAML with 'shards:' and 'source:' (and optionally 'pipeline:', 'run:')."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the tars and manifest.json.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Finish an interrupted job: skip the shards already done.")
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Local processes (or Ray tasks in flight); 0: one per core for a CPU source.")
    ] = None,
    distributor: Annotated[
        str | None,
        typer.Option("--distributor", help="local | ray | torchrun (RANK/WORLD_SIZE pick the shards)."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="Encode threads per process (0: cores / workers).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe field: a.b.c=value (repeatable).")
    ] = None,
) -> None:
    """Stream a recipe's samples into WebDataset shards OUT/{name}-{i:06d}.tar, deterministic per shard."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from augmentgen.shards import RunConfig, load_recipe, write_shards

    hint = "the shards that finished are kept; add --resume to the same command to write the rest"
    with on_interrupt(hint), exit_on(OSError, code=3), exit_on(ValueError):
        r = load_recipe(recipe, set_ or [])
        overrides = {
            k: v
            for k, v in {"workers": workers, "distributor": distributor, "threads": threads}.items()
            if v is not None
        }
        run = RunConfig.model_validate({**r.run.model_dump(), **overrides})
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            result = write_shards(r, out, resume=resume, run=run, hook=_ShardBar(progress, r.shards.size))
    rate = result.samples / result.seconds if result.seconds > 0 else 0.0
    console.print(
        f"{out}: wrote {len(result.written)} shard(s), {result.samples} samples in {result.seconds:.1f} s "
        f"({rate:,.0f} samples/s); {len(result.skipped)} already done"
        + (f"; rejected rows: {result.rejected}" if result.rejected else "")
    )
    if result.failed:
        for i, err in sorted(result.failed.items()):
            console.print(f"[red]shard {i} failed:[/red] {err}")
        console.print("rerun with --resume to retry the failed shards")
        raise typer.Exit(1)


@app.command()
def verify(
    out: Annotated[Path, typer.Argument(help="An output folder of `augmentgen generate`.")],
    decode: Annotated[bool, typer.Option("--decode/--no-decode", help="Also decode every member.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check every tar against manifest.json (sha256, counts, decodable members); name any fault."""
    from augmentgen.shards import verify_shards

    report = verify_shards(out, decode=decode)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "complete": report.complete,
                    "shards": report.shards,
                    "samples": report.samples,
                    "faults": [str(f) for f in report.faults],
                },
                indent=2,
            )
        )
    else:
        for fault in report.faults:
            console.print(f"[red]fault:[/red] {fault}")
        state = "[green]ok[/green]" if report.ok else f"[red]{len(report.faults)} fault(s)[/red]"
        console.print(f"{out}: {report.shards} shard(s), {report.samples} samples checked: {state}")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def export(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="coco | yolo")],
    shards: Annotated[Path, typer.Argument(help="A shard folder (manifest.json), a glob, or a .tar.")],
    out: Annotated[Path, typer.Argument(help="Output folder (images/ plus annotations.json, or labels/ + data.yaml).")],
    categories: Annotated[
        Optional[Path],
        typer.Option("--categories", help="JSON with a COCO 'categories' list or {id: name} (default: the manifest's)."),
    ] = None,
) -> None:
    """Write detection shards (boxes.json, mask.png) as a COCO or YOLO data set."""
    from augmentgen.shards.export import export_coco, export_yolo

    if fmt not in ("coco", "yolo"):
        raise fail(f"FORMAT must be 'coco' or 'yolo', got {fmt!r}")
    with exit_on(ValueError, OSError):
        fn = export_coco if fmt == "coco" else export_yolo
        res = fn(shards, out, categories=categories)
    console.print(f"{res.out}: {res.images} images, {res.boxes} boxes ({fmt})")


@bench_app.command("shards")
def bench_shards(
    quick: Annotated[bool, typer.Option("--quick", help="Fewer samples per measurement.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Samples/s of the shard writer vs webdataset.ShardWriter + PIL, the encode ceiling and raw tar."""
    from augmentgen.bench.shards import run_shards_benchmark

    results = run_shards_benchmark(quick=quick, log=None if as_json else console.print)
    if as_json:
        print(json.dumps(results, indent=2))
