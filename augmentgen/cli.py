"""The `augmentgen` command: parse, load recipe, call library functions, show progress.

Each concern adds its commands in its own section below; keep command bodies thin.
"""

from __future__ import annotations

import json
import logging
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



# ---- generators and training ----------------------------------------------------------
@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe with data, classifier, generators, eval sections.")],
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="Override a recipe field: a.b.c=value (repeatable).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Reuse the classifier and resume checkpoints.")] = False,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Train only these generators.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """Train the reference classifier and the recipe's generators, then measure them (CAS, agreement)."""
    from augmentgen.eval.train_job import format_report, run_train_recipe
    from augmentgen.generators.config import load_train_recipe
    from augmentgen.generators.monitors import TrainingStopped

    try:
        spec = load_train_recipe(recipe, set_ or [])
        report = run_train_recipe(spec, progress=not no_progress, resume=resume, only=only or None)
    except TrainingStopped as e:
        console.print(f"[red]training stopped ({e.reason}):[/red] {e}")
        raise typer.Exit(2) from e
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from e
    typer.echo(format_report(report))  # plain echo: rich would wrap the Markdown table
    console.print(f"report: {Path(spec.output_dir) / 'report.md'}")


# ---- shards ---------------------------------------------------------------------------
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
) -> None:
    """Stream a recipe's samples into WebDataset shards OUT/{name}-{i:06d}.tar, deterministic per shard."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from augmentgen.shards import RunConfig, load_recipe, write_shards

    try:
        r = load_recipe(recipe)
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
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    except OSError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(3) from e
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


# ---- checks ---------------------------------------------------------------------------
def _print_check(job: Any) -> None:
    from rich.table import Table

    from augmentgen.checks.report import verdict

    run = job.run
    table = Table("metric", "value", "gate", "")
    for r in run.results:
        gate = ", ".join(r.details.get("gates", [])) or "-"
        mark = "" if r.threshold is None else ("[green]pass[/green]" if r.passed else "[red]FAIL[/red]")
        table.add_row(r.name, f"{r.value:.4g}", gate, mark)
    console.print(table)
    for key, s in job.spread.items():
        console.print(f"spread {key}: mean {s['mean']:.4g} std {s['std']:.4g} (n={int(s['n'])})")
    kind, headline, _ = verdict(run)
    console.print(f"[{'green' if kind == 'pass' else 'red' if kind == 'fail' else 'blue'}]{headline}[/]")
    for r in run.failed:
        console.print(
            f"[red]gate failed:[/red] {', '.join(r.details.get('gates', []))} (value {r.value:.4g})"
        )
    for key in run.unknown_gates:
        console.print(f"[red]gate failed:[/red] '{key}' was not measured")
    if job.paths:
        console.print(f"report: {job.paths['report']}  metrics: {job.paths['metrics']}")


@app.command()
def check(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Shard folder(s) or generator folder(s); several = checkpoints, last one gated."),
    ],
    real: Annotated[
        str, typer.Option("--real", help="Real data: fashion-mnist[:split], digits[:split], or a folder.")
    ],
    train: Annotated[
        str | None,
        typer.Option("--train", help="Generator's training data for memorization (default: --real)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for metrics.json, report.html, plots/.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json to stdout.")] = False,
    gate: Annotated[
        list[str] | None, typer.Option("--gate", "-g", help="A gate 'metric >= value' (repeatable).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML with a checks section (CheckConfig fields).")
    ] = None,
    features: Annotated[
        str | None,
        typer.Option("--features", help="effnet_lite0 | classifier | pixels | torchvision:NAME | timm:NAME"),
    ] = None,
    feature_size: Annotated[
        int | None, typer.Option("--feature-size", help="EffNet-Lite0 input side.")
    ] = None,
    classifier: Annotated[
        Path | None, typer.Option("--classifier", help="Reference classifier folder (label checks).")
    ] = None,
    n: Annotated[
        int | None, typer.Option("--n", help="Generated samples (generators: 10000; shards: all).")
    ] = None,
    n_real: Annotated[
        int, typer.Option("--n-real", help="Real (and training) samples used, drawn under --seed.")
    ] = 10_000,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of sampling, subsets and k-means.")] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Generator seeds to measure the spread over.")] = 1,
    device: Annotated[
        str, typer.Option("--device", help="cpu or cuda[:i] for features and generation.")
    ] = "cpu",
    threads: Annotated[
        int | None,
        typer.Option("--threads", help="torch CPU threads (1 is fastest on a busy shared CPU)."),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Feature cache (default ~/.cache/augmentgen/features).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not cache features on disk.")] = False,
    training_log: Annotated[
        Path | None, typer.Option("--training-log", help="Trainer metrics.jsonl for the report's curves.")
    ] = None,
) -> None:
    """Measure generated data against real data (fidelity, diversity, labels, memorization) and apply gates.

    Writes metrics.json and report.html; exits 1 naming each failed gate, 2 on bad input.
    """
    import torch

    import augmentgen.generators  # noqa: F401  (fills the generator registry)
    from augmentgen.checks.feature_cache import default_cache_dir
    from augmentgen.checks.inputs import load_real
    from augmentgen.checks.job import load_check_config, run_check_job, subsample
    from augmentgen.checks.report import read_training_log

    overrides: dict[str, Any] = {
        k: v
        for k, v in {"features": features, "feature_size": feature_size, "seed": seed}.items()
        if v is not None
    }
    if gate:
        overrides["gates"] = list(gate)
    say = (lambda s: None) if as_json else console.print
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    try:
        cfg = load_check_config(config, overrides)
        real_ds = subsample(load_real(real), n_real, cfg.seed)
        train_ds = subsample(load_real(train), n_real, cfg.seed + 1) if train else None
        clf = None
        if classifier is not None:
            from augmentgen.eval.classifier import ReferenceClassifier

            clf = ReferenceClassifier.from_pretrained(classifier, device=device)
        log = read_training_log(training_log) if training_log is not None else None
        out_dir = out if out is not None else Path("checks") / sources[-1].name
        job = run_check_job(
            sources,
            real_ds,
            config=cfg,
            out_dir=out_dir,
            train=train_ds,
            classifier=clf,
            n=n,
            seeds=seeds,
            device=device,
            cache_dir=None if no_cache else (cache_dir or default_cache_dir()),
            training_log=log,
            log=say,
        )
    except (ValueError, TypeError, OSError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    if as_json:
        print(json.dumps(job.metrics, indent=2, default=str))
    else:
        _print_check(job)
    if not job.run.passed:
        if as_json:
            for r in job.run.failed:
                typer.echo(
                    f"gate failed: {', '.join(r.details.get('gates', []))} (value {r.value:.4g})", err=True
                )
        raise typer.Exit(1)


# ---- recipes and the main job ---------------------------------------------------------
def _load_recipe_or_exit(recipe: Path, set_: list[str] | None) -> Any:
    from augmentgen.recipes import load_recipe

    try:
        return load_recipe(recipe, set_ or [])
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e


@app.command()
def show(
    recipe: Annotated[Optional[Path], typer.Argument(help="A recipe YAML (see recipes/).")] = None,
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="Override a recipe field: a.b.c=value (repeatable).")
    ] = None,
    reference: Annotated[
        bool, typer.Option("--reference", help="Print the recipe reference (every field) as Markdown.")
    ] = False,
) -> None:
    """Print the resolved recipe (every default filled in) and its hash, or the recipe reference."""
    from augmentgen.recipes import dump_recipe

    if reference:
        from augmentgen.recipes.reference import reference_markdown

        print(reference_markdown(), end="")
        return
    if recipe is None:
        console.print("[red]error:[/red] give a RECIPE (or --reference)")
        raise typer.Exit(2)
    from augmentgen.recipes.detection import is_detection_recipe, load_detection_recipe

    if is_detection_recipe(recipe):  # kind: detection (issue 8)
        import yaml

        try:
            d = load_detection_recipe(recipe, set_ or [])
        except ValueError as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from e
        print(yaml.safe_dump(d.model_dump(mode="json"), sort_keys=False, default_flow_style=None, width=100), end="")
        return
    r = _load_recipe_or_exit(recipe, set_)
    print(f"# recipe sha256: {r.sha256()}")
    print(dump_recipe(r), end="")


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="A recipe YAML (see recipes/).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default runs/NAME).")] = None,
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="Override a recipe field: a.b.c=value (repeatable).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """The main job: train or load generators, write shards, verify, check, evaluate, report.

    Each stage is skipped when it is already done for the same recipe hash, so running the same
    command again after a crash or a kill picks up where it stopped. Exits 1 when a gate fails.
    """
    from augmentgen.generators.monitors import TrainingStopped
    from augmentgen.recipes.detection import is_detection_recipe
    from augmentgen.recipes.run import run_recipe

    if is_detection_recipe(recipe):  # kind: detection (issue 8): shards, box checks, grids, export
        _run_detection(recipe, out, set_, quiet)
        return
    r = _load_recipe_or_exit(recipe, set_)
    out_dir = out if out is not None else Path("runs") / r.name
    try:
        result = run_recipe(r, out_dir, console=None if quiet else console)
    except TrainingStopped as e:
        console.print(f"[red]training stopped ({e.reason}):[/red] {e}")
        raise typer.Exit(2) from e
    except (ValueError, TypeError, OSError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    console.print(f"report: {result.report}")
    if not result.gates_passed:
        console.print("[red]some gates failed[/red] (see the report)")
        raise typer.Exit(1)


@app.command()
def evaluate(
    target: Annotated[Path, typer.Argument(help="A recipe YAML, or a run folder of `augmentgen run`.")],
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Run folder for a recipe (default runs/NAME).")
    ] = None,
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="Override a recipe field: a.b.c=value (repeatable).")
    ] = None,
) -> None:
    """The downstream protocol: classifier accuracy with real, +classical, +synthetic and synthetic-only data.

    Trains (or reuses) the recipe's generators on the same real subset, writes evaluation.json
    and evaluation.png, and refreshes report.html.
    """
    from augmentgen.recipes.run import run_recipe

    if target.is_dir():
        if out is not None and out != target:
            console.print("[red]error:[/red] --out is for a recipe; a run folder is evaluated in place")
            raise typer.Exit(2)
        recipe_file, out_dir = target / "recipe.yaml", target
        r = _load_recipe_or_exit(recipe_file, set_)
    else:
        r = _load_recipe_or_exit(target, set_)
        out_dir = out if out is not None else Path("runs") / r.name
    try:
        run_recipe(r, out_dir, stages=("train", "evaluate", "report"), console=console)
    except (ValueError, TypeError, OSError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    ev = json.loads((out_dir / "evaluation.json").read_text())
    from rich.table import Table

    table = Table("arm", "mean", "std", "train images")
    for arm, a in ev["arms"].items():
        table.add_row(arm, f"{a['mean']:.4f}", f"{a['std']:.4f}", str(a["train_images"]))
    console.print(table)
    console.print(f"evaluation: {out_dir / 'evaluation.json'}  report: {out_dir / 'report.html'}")


# ---- prompts (issue 6) -------------------------------------------------------------------
@app.command()
def prompts(
    recipe: Annotated[Path, typer.Argument(help="A recipe YAML with a 'prompts:' section.")],
    cache: Annotated[
        Optional[Path], typer.Option("--cache", help="JSONL cache (default: prompts.cache or runs/NAME/).")
    ] = None,
    only: Annotated[Optional[str], typer.Option("--classes", help="Comma-separated class names.")] = None,
    examples: Annotated[int, typer.Option(help="Kept prompts shown per class.")] = 2,
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="Override a recipe field: a.b.c=value (repeatable).")
    ] = None,
) -> None:
    """Write the recipe's prompts per class to the JSONL cache and show kept/dropped counts and examples.

    Classes already in the cache cost nothing; the LLM loads only when some class is missing.
    """
    from rich.table import Table

    from augmentgen.generators.prompts_job import summarize, write_prompts

    r = _load_recipe_or_exit(recipe, set_)
    if r.prompts is None:
        console.print(f"[red]error:[/red] {recipe} has no 'prompts:' section")
        raise typer.Exit(2)
    path = cache or Path(r.prompts.cache or Path("runs") / r.name / "prompts.jsonl")
    names = [c.strip() for c in only.split(",") if c.strip()] if only else None
    try:
        with console.status(f"writing {r.prompts.source} prompts to {path}") as status:
            done = lambda run: status.update(f"done: {run.record['class']}")  # noqa: E731
            runs = write_prompts(r.prompts, path, classes=names, on_class=done)
    except (ValueError, TypeError, OSError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    table = Table("class", "kept", "candidates", "dropped", "cpu s", "examples", title=r.prompts.source)
    table.columns[0].no_wrap = True  # class names stay whole on a narrow (e.g. CI, 80-column) terminal
    for row in summarize(runs, examples):
        dropped = ", ".join(f"{k} {v}" for k, v in row["dropped"].items()) or "-"
        cells = [row["class"], str(row["kept"]), str(row["candidates"]), dropped, f"{row['cpu_s'] or 0:.1f}"]
        table.add_row(*cells, "\n".join(row["examples"]))
    console.print(table)
    typer.echo(f"cache: {path}")  # unwrapped, so the path can be copied


# ---- detection data out (issue 8) ------------------------------------------------------
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
        console.print(f"[red]error:[/red] FORMAT must be 'coco' or 'yolo', got {fmt!r}")
        raise typer.Exit(2)
    try:
        fn = export_coco if fmt == "coco" else export_yolo
        res = fn(shards, out, categories=categories)
    except (ValueError, OSError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    console.print(f"{res.out}: {res.images} images, {res.boxes} boxes ({fmt})")


def _run_detection(recipe: Path, out: Optional[Path], set_: Optional[list[str]], quiet: bool) -> None:
    from augmentgen.recipes.detection import load_detection_recipe, run_detection_recipe

    try:
        r = load_detection_recipe(recipe, set_ or [])
        res = run_detection_recipe(r, out if out is not None else Path("runs") / r.name, console=None if quiet else console)
    except (ValueError, TypeError, OSError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    console.print(f"report: {res.report}")
    if not res.passed:
        console.print("[red]box validity gate failed[/red] (see checks/boxes.json)")
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
