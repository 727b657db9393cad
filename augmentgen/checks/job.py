"""The body of ``augmentgen check``: load the generated side, run the checks, spread over seeds/checkpoints, write outputs.

Several generated sources (checkpoints of one run, in order) and several seeds per
generator give a spread per metric (``metrics.json["spread"]``); the gates judge the last
source at the first seed, the model a user would ship.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError
from torch import nn

from augmentgen.checks.functional.stability import metric_spread
from augmentgen.checks.gates import apply_gates, parse_gates, unknown_gate_keys
from augmentgen.checks.inputs import (
    is_generator_folder,
    load_generated,
    load_generator_model,
    sample_generator,
)
from augmentgen.checks.reconstruction import ReconstructionCheck
from augmentgen.checks.report import write_outputs
from augmentgen.checks.suite import CheckConfig, CheckRun, run_checks
from augmentgen.data.sources import ArrayDataset, conform

logger = logging.getLogger(__name__)


def load_check_config(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> CheckConfig:
    """A ``CheckConfig`` from a YAML file (a bare mapping, or a recipe with a ``checks:`` section) plus overrides.

    Example:
        >>> load_check_config(None, {"features": "pixels"}).features
        'pixels'
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"check config {p}: cannot read ({e})") from e
        if not isinstance(loaded, dict):
            raise ValueError(f"check config {p}: expected a mapping, got {type(loaded).__name__}")
        data = dict(loaded.get("checks", loaded)) if isinstance(loaded.get("checks", loaded), dict) else {}
    for k, v in (overrides or {}).items():
        if k == "gates" and data.get("gates"):
            base = data["gates"]
            extra = list(v)
            data["gates"] = (
                [f"{key} {bound}" for key, bound in base.items()] + extra
                if isinstance(base, dict)
                else list(base) + extra
            )
        else:
            data[k] = v
    try:
        return CheckConfig.model_validate(data)
    except ValidationError as e:  # each problem in one line, without pydantic's boilerplate
        where = ".".join(str(x) for x in e.errors()[0]["loc"]) if len(e.errors()) == 1 else ""
        msgs = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in e.errors())
        raise ValueError(f"check config{' ' + str(path) if path else ''}: {where + ': ' if where else ''}{msgs}") from None
    except ValueError as e:
        raise ValueError(f"check config{' ' + str(path) if path else ''}: {e}") from e


def subsample(ds: ArrayDataset, n: int | None, seed: int) -> ArrayDataset:
    """At most ``n`` rows of ``ds``, drawn without replacement under ``seed`` (all rows when ``n`` is None)."""
    if n is None or n >= len(ds):
        return ds
    idx = np.sort(np.random.default_rng(seed).choice(len(ds), n, replace=False))
    return ds.select(idx, name=f"{ds.name}[{n}]")


@dataclass
class CheckJob:
    """What a check job measured: the gated run, every run for the spread, and the files written."""

    run: CheckRun
    runs: list[tuple[str, CheckRun]] = field(default_factory=list)
    spread: dict[str, dict[str, float]] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def _match_shapes(
    generated: ArrayDataset, real: ArrayDataset, train: ArrayDataset | None, say: Callable[[str], None]
) -> tuple[ArrayDataset, ArrayDataset | None]:
    """Real (and training) images resized and converted to the generated images' shape, said when they change.

    A generator trained through a recipe's ``data.image_size`` makes images of that size; its
    real folder may still hold the originals. Pixel features need one shape, and a feature
    network would resize both anyway.
    """
    _, h, w, c = generated.images.shape
    mode = "L" if c == 1 else "RGB"
    out: list[ArrayDataset | None] = []
    for ds in (real, train):
        if ds is None or ds.images.shape[1:] == generated.images.shape[1:]:
            out.append(ds)
            continue
        _, rh, rw, rc = ds.images.shape
        say(f"  '{ds.name}': {rw}x{rh}x{rc} images resized to the generated {w}x{h}x{c}")
        out.append(conform(ds, size=(h, w), mode=mode))
    assert out[0] is not None
    return out[0], out[1]


def run_check_job(
    sources: Sequence[str | Path],
    real: ArrayDataset,
    *,
    config: CheckConfig,
    out_dir: str | Path | None,
    train: ArrayDataset | None = None,
    classifier: nn.Module | None = None,
    n: int | None = None,
    seeds: int = 1,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    training_log: Sequence[Mapping[str, Any]] | None = None,
    log: Callable[[str], None] | None = None,
) -> CheckJob:
    """Check every source (and seed, for generators) against ``real``; write outputs for the gated run.

    Args:
        sources: shard folders or generator folders; with several, the last one is gated.
        real: real data for fidelity and diversity.
        config: checks, feature space and gates.
        out_dir: where ``metrics.json``, ``report.html`` and ``plots/`` go (None: write nothing).
        train: training set for memorization (defaults to ``real``).
        classifier: reference classifier for the label checks.
        n: generated samples per source (generators: default 10,000; shards: all).
        seeds: generator seeds ``config.seed .. config.seed + seeds - 1``.
        training_log: trainer records (``metrics.jsonl``) for the report's training section.
        log: progress lines (the CLI prints them).
    """
    if not sources:
        raise ValueError("check: give at least one shard or generator folder")
    if seeds < 1:
        raise ValueError(f"check: --seeds must be >= 1, got {seeds}")
    say = log or (lambda s: logger.info("%s", s))
    runs: list[tuple[str, CheckRun]] = []
    gated: CheckRun | None = None
    for si, src in enumerate(sources):
        is_gen = is_generator_folder(src)
        model = load_generator_model(src, device=device) if is_gen else None
        for k in range(seeds if is_gen else 1):
            seed = config.seed + k
            if model is not None:
                generated = sample_generator(
                    model,
                    n or 10_000,
                    real.classes,
                    seed=seed,
                    device=device,
                    name=f"generator:{Path(src).name}",
                )
            else:
                generated = load_generated(src, real.classes, n=n, seed=seed, device=device)
            say(f"{src}{f' seed {seed}' if is_gen else ''}: {len(generated)} generated vs {len(real)} real")
            real, train = _match_shapes(generated, real, train, say)
            run = run_checks(
                generated,
                real,
                config=config,
                train=train,
                classifier=classifier,
                device=device,
                cache_dir=cache_dir,
            )
            if model is not None and k == 0:
                _add_reconstruction(run, model, real, config)
            runs.append((f"{src}" + (f"@seed{seed}" if is_gen else ""), run))
            if si == len(sources) - 1 and k == 0:
                gated = run
    if gated is None:  # unreachable: sources is not empty
        raise ValueError("check: nothing was measured")
    spread = (
        metric_spread([{_key(r): r.value for r in run.results} for _, run in runs]) if len(runs) > 1 else {}
    )
    extra: dict[str, Any] = {"sources": [str(s) for s in sources]}
    if spread:
        extra["spread"] = spread
        extra["runs"] = {name: {_key(r): r.value for r in run.results} for name, run in runs}
    job = CheckJob(run=gated, runs=runs, spread=spread)
    if out_dir is not None:
        title = f"augmentgen check: {Path(sources[-1]).name}"
        job.paths = write_outputs(gated, out_dir, training_log=training_log, title=title, extra=extra)
    job.metrics = {**gated.metrics(), **extra}
    return job


def _add_reconstruction(run: CheckRun, model: Any, real: ArrayDataset, config: CheckConfig) -> None:
    """PSNR/SSIM of an autoencoding generator (one with ``reconstruct(batch)``, the CVAE) on up to 1000 real images."""
    if not callable(getattr(model, "reconstruct", None)):
        return
    check = ReconstructionCheck()
    data = subsample(real, 1000, config.seed)
    for s in range(0, len(data), config.batch_size):
        batch = data.to_batch(np.arange(s, min(s + config.batch_size, len(data))))
        check.update_pair(batch.image, model.reconstruct(batch).image.detach().float().cpu())
    gates = parse_gates(config.gates)
    run.results.extend(apply_gates(check.measure(), gates))
    run.unknown_gates = unknown_gate_keys(run.results, gates)


def _key(r: Any) -> str:
    return str(r.details.get("key", r.name))
