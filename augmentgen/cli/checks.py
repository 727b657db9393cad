"""``augmentgen check``: measure generated data against real data and apply the gates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from augmentgen.cli._app import app, console, exit_on


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
        why = " (label checks and the Inception Score need --classifier)" if key.startswith(("label_", "inception")) else ""
        console.print(f"[red]gate failed:[/red] '{key}' was not measured{why}")
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
        int | None, typer.Option("--n", min=2, help="Generated samples (generators: 10000; shards: all).")
    ] = None,
    n_real: Annotated[
        int, typer.Option("--n-real", min=2, help="Real (and training) samples used, drawn under --seed.")
    ] = 10_000,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of sampling, subsets and k-means.")] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Generator seeds to measure the spread over.")] = 1,
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
    with exit_on(ValueError, TypeError, OSError):
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
