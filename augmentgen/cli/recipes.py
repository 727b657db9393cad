"""Recipe commands: the main job (``run``), ``evaluate``, ``show``, ``train`` and ``prompts``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from augmentgen.cli._app import SetOption, app, console, exit_on, fail, load_recipe_or_exit, on_interrupt

# what Ctrl-C leaves of a run, and how to go on
RUN_HINT = "the stages that finished are kept; run the same command again to go on from there"


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="A recipe YAML (see recipes/).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default runs/NAME).")] = None,
    set_: SetOption = None,
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
    r = load_recipe_or_exit(recipe, set_)
    out_dir = out if out is not None else Path("runs") / r.name
    try:
        with on_interrupt(RUN_HINT), exit_on(ValueError, TypeError, OSError):
            result = run_recipe(r, out_dir, console=None if quiet else console)
    except TrainingStopped as e:
        console.print(f"[red]training stopped ({e.reason}):[/red] {e}")
        raise typer.Exit(2) from e
    console.print(f"report: {result.report}")
    if not result.gates_passed:
        console.print("[red]some gates failed[/red] (see the report)")
        raise typer.Exit(1)


def _run_detection(recipe: Path, out: Optional[Path], set_: Optional[list[str]], quiet: bool) -> None:
    from augmentgen.recipes.detection import load_detection_recipe, run_detection_recipe

    with on_interrupt(RUN_HINT), exit_on(ValueError, TypeError, OSError):
        r = load_detection_recipe(recipe, set_ or [])
        res = run_detection_recipe(r, out if out is not None else Path("runs") / r.name, console=None if quiet else console)
    console.print(f"report: {res.report}")
    if not res.passed:
        console.print("[red]box validity gate failed[/red] (see checks/boxes.json)")
        raise typer.Exit(1)


@app.command()
def evaluate(
    target: Annotated[Path, typer.Argument(help="A recipe YAML, or a run folder of `augmentgen run`.")],
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Run folder for a recipe (default runs/NAME).")
    ] = None,
    set_: SetOption = None,
) -> None:
    """The downstream protocol: classifier accuracy with real, +classical, +synthetic and synthetic-only data.

    Trains (or reuses) the recipe's generators on the same real subset, writes evaluation.json
    and evaluation.png, and refreshes report.html.
    """
    from rich.table import Table

    from augmentgen.recipes.report import gain_text
    from augmentgen.recipes.run import run_recipe

    if target.is_dir():
        if out is not None and out != target:
            raise fail("--out is for a recipe; a run folder is evaluated in place")
        recipe_file, out_dir = target / "recipe.yaml", target
        r = load_recipe_or_exit(recipe_file, set_)
    else:
        r = load_recipe_or_exit(target, set_)
        out_dir = out if out is not None else Path("runs") / r.name
    with on_interrupt(RUN_HINT), exit_on(ValueError, TypeError, OSError):
        run_recipe(r, out_dir, stages=("train", "evaluate", "report"), console=console)
    ev = json.loads((out_dir / "evaluation.json").read_text())
    table = Table("arm", "mean", "std", "train images")
    for arm, a in ev["arms"].items():
        table.add_row(arm, f"{a['mean']:.4f}", f"{a['std']:.4f}", str(a["train_images"]))
    console.print(table)
    for name, gain in ev.get("gains", {}).items():
        console.print(gain_text(name, gain, (ev.get("paired") or {}).get(name)), markup=False)
    console.print(f"evaluation: {out_dir / 'evaluation.json'}  report: {out_dir / 'report.html'}")


@app.command()
def init(
    data: Annotated[
        Path,
        typer.Argument(help="Your data: a folder of class subfolders (or train/ and test/ of them), or of .tar shards."),
    ],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Recipe file to write (default: NAME.yaml).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Recipe name (default: the folder's name).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing recipe file.")] = False,
) -> None:
    """Draft a recipe for your own data: classes, counts and image sizes looked up, the rest from the built-in recipes."""
    import re

    from augmentgen.recipes.init import draft_recipe, survey

    with exit_on(ValueError, OSError):
        s = survey(data)
        base = name or re.sub(r"[^A-Za-z0-9_-]+", "-", data.resolve().name).strip("-") or "my-data"
        text = draft_recipe(s, name=base)
    target = out or Path(f"{base}.yaml")
    if target.exists() and not force:
        raise fail(f"{target} exists; pass --force to overwrite it, or --out another file")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    size = s.image_size()
    console.print(
        f"{s.source} {s.root}: {len(s.classes)} classes, {sum(s.counts)} images (smallest class {min(s.counts)})"
        + (f", test set {s.test_root}" if s.test_root else "")
        + (f"; images resized to {size}x{size}" if size else "")
    )
    console.print(f"wrote {target}; next: augmentgen run {target} --out runs/{base}")


@app.command()
def show(
    recipe: Annotated[Optional[Path], typer.Argument(help="A recipe YAML (see recipes/).")] = None,
    set_: SetOption = None,
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
        raise fail("give a RECIPE (or --reference)")
    from augmentgen.recipes.detection import is_detection_recipe, load_detection_recipe

    if is_detection_recipe(recipe):  # kind: detection (issue 8)
        import yaml

        with exit_on(ValueError):
            d = load_detection_recipe(recipe, set_ or [])
        print(yaml.safe_dump(d.model_dump(mode="json"), sort_keys=False, default_flow_style=None, width=100), end="")
        return
    r = load_recipe_or_exit(recipe, set_)
    print(f"# recipe sha256: {r.sha256()}")
    print(dump_recipe(r), end="")


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe with data, classifier, generators, eval sections.")],
    set_: SetOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Reuse the classifier and resume checkpoints.")] = False,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Train only these generators.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """Train the reference classifier and the recipe's generators, then measure them (CAS, agreement).

    Exits 2 on bad input (the recipe, its data) and when a training monitor stops a generator, as run does.
    """
    from augmentgen.eval.train_job import format_report, run_train_recipe
    from augmentgen.generators.config import load_train_recipe
    from augmentgen.generators.monitors import TrainingStopped

    try:
        with on_interrupt("the last checkpoint of each generator is kept; add --resume to the same command to go on"), \
                exit_on(ValueError):
            spec = load_train_recipe(recipe, set_ or [])
            report = run_train_recipe(spec, progress=not no_progress, resume=resume, only=only or None)
    except TrainingStopped as e:
        console.print(f"[red]training stopped ({e.reason}):[/red] {e}")
        raise typer.Exit(2) from e
    typer.echo(format_report(report))  # plain echo: rich would wrap the Markdown table
    console.print(f"report: {Path(spec.output_dir) / 'report.md'}")


@app.command()
def prompts(
    recipe: Annotated[Path, typer.Argument(help="A recipe YAML with a 'prompts:' section.")],
    cache: Annotated[
        Optional[Path], typer.Option("--cache", help="JSONL cache (default: prompts.cache or runs/NAME/).")
    ] = None,
    only: Annotated[Optional[str], typer.Option("--classes", help="Comma-separated class names.")] = None,
    examples: Annotated[int, typer.Option(help="Kept prompts shown per class.")] = 2,
    set_: SetOption = None,
) -> None:
    """Write the recipe's prompts per class to the JSONL cache and show kept/dropped counts and examples.

    Classes already in the cache cost nothing; the LLM loads only when some class is missing.
    """
    from rich.table import Table

    from augmentgen.generators.prompts_job import summarize, write_prompts

    r = load_recipe_or_exit(recipe, set_)
    if r.prompts is None:
        raise fail(f"{recipe} has no 'prompts:' section")
    path = cache or Path(r.prompts.cache or Path("runs") / r.name / "prompts.jsonl")
    names = [c.strip() for c in only.split(",") if c.strip()] if only else None
    with exit_on(ValueError, TypeError, OSError), console.status(f"writing {r.prompts.source} prompts to {path}") as status:
        done = lambda run: status.update(f"done: {run.record['class']}")  # noqa: E731
        runs = write_prompts(r.prompts, path, classes=names, on_class=done)
    table = Table("class", "kept", "candidates", "dropped", "cpu s", "examples", title=r.prompts.source)
    table.columns[0].no_wrap = True  # class names stay whole on a narrow (e.g. CI, 80-column) terminal
    for row in summarize(runs, examples):
        dropped = ", ".join(f"{k} {v}" for k, v in row["dropped"].items()) or "-"
        cells = [row["class"], str(row["kept"]), str(row["candidates"]), dropped, f"{row['cpu_s'] or 0:.1f}"]
        table.add_row(*cells, "\n".join(row["examples"]))
    console.print(table)
    typer.echo(f"cache: {path}")  # unwrapped, so the path can be copied
