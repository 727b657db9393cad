"""What ``augmentgen train RECIPE.yaml`` runs: reference classifier, generators, then their measurements.

For each generator it records training time, parameters, checkpoint size, peak memory while
training and while sampling, sampling throughput, label agreement and CAS, and writes them
to ``{output_dir}/report.json`` and ``report.md``. Finished parts are reused with ``resume``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from augmentgen.core.batch import Batch
from augmentgen.core.registry import GENERATORS
from augmentgen.core.rng import torch_rng
from augmentgen.data.sources import (
    ArrayDataset,
    conform,
    load_digits,
    load_fashion_mnist,
    load_image_folder,
    subset_per_class,
    train_val_split,
)
from augmentgen.eval.cas import classification_accuracy_score, generate_dataset, label_agreement
from augmentgen.eval.classifier import (
    ClassifierConfig,
    ReferenceClassifier,
    resolve_precision,
    train_classifier,
)
from augmentgen.eval.forked import fork_workers, run_forked
from augmentgen.generators import checkpoint as ckpt
from augmentgen.generators.config import ClassifierSpec, DataSpec, GeneratorSpec, TrainRecipe
from augmentgen.generators.layers import count_parameters
from augmentgen.generators.monitors import CollapseMonitor
from augmentgen.generators.trainer import Trainer

logger = logging.getLogger(__name__)


# ---- peak memory ---------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset the process's peak resident set size (Linux ``clear_refs``); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def peak_rss_mib() -> float | None:
    """Peak resident set size since the last reset, MiB (Linux ``VmHWM``); None where unknown."""
    return _status_mib("VmHWM")


def rss_mib() -> float | None:
    """Current resident set size, MiB (Linux ``VmRSS``); None where unknown."""
    return _status_mib("VmRSS")


# ---- data ------------------------------------------------------------------------------------------


def _load_folder(spec: DataSpec, root: str, mode: str | None) -> ArrayDataset:
    """An image folder or a folder of WebDataset tars, resized to ``data.image_size`` as it loads."""
    if spec.source == "webdataset":
        from augmentgen.data.webdataset import load_webdataset

        return load_webdataset(root, size=spec.image_size, mode=mode, classes=spec.classes)
    size = None if spec.image_size is None else (spec.image_size, spec.image_size)
    return load_image_folder(root, mode=mode, size=size)


def load_data(spec: DataSpec) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) for a recipe's ``data`` section; a low-data subset of train when ``n_per_class`` is set."""
    if spec.source == "fashion_mnist":
        train, test = load_fashion_mnist("train", spec.root), load_fashion_mnist("test", spec.root)
    elif spec.source == "digits":
        train, test = load_digits("train"), load_digits("test")
    else:
        folder = _load_folder(spec, str(spec.root), spec.mode)
        if spec.test_root is None:
            train, test = train_val_split(folder, spec.test_fraction, seed=0)
        else:
            # the test folder in the training folder's mode, so both have the same channels
            mode = spec.mode or ("L" if folder.image_shape[0] == 1 else "RGB")
            train, test = folder, _load_folder(spec, spec.test_root, mode)
            if spec.source == "image_folder" and test.classes != train.classes:
                raise ValueError(
                    f"data.test_root {spec.test_root}: class folders {test.classes} differ from "
                    f"data.root's {train.classes}"
                )
            if spec.source == "webdataset":
                test = ArrayDataset(test.images, test.labels, train.classes, test.name)  # labels beyond: named there
    train = conform(train, size=spec.image_size, mode=spec.mode)
    test = conform(test, size=spec.image_size, mode=spec.mode)
    c, h, w = train.image_shape
    if h != w or h % 4 or h < 8 or test.image_shape != train.image_shape:
        raise ValueError(
            f"data: the {spec.source} images are {w}x{h} (test {test.image_shape[2]}x{test.image_shape[1]}); "
            "the generators and the reference classifier take one square side, a multiple of 4 and "
            f">= 8: set data.image_size (e.g. {max(8, -(-max(h, w) // 4) * 4)})"
        )
    if spec.n_per_class is not None:
        try:
            train = subset_per_class(train, spec.n_per_class, seed=spec.subset_seed)
        except ValueError as e:
            raise ValueError(f"data.n_per_class={spec.n_per_class}: {e}") from e
    return train, test


def _classifier_kwargs(spec: ClassifierSpec, train: ArrayDataset) -> dict[str, Any]:
    c, h, _ = train.image_shape
    cfg = ClassifierConfig(
        num_classes=train.num_classes, channels=c, image_size=h, width=spec.width, dropout=spec.dropout
    )
    return {
        "config": cfg,
        "steps": spec.steps,
        "batch_size": spec.batch_size,
        "lr": spec.lr,
        "augment": spec.augment,
        # resolved here, so what the arms trained with is recorded (evaluation.json, the checkpoint's meta)
        "precision": resolve_precision(spec.precision),
    }


def _write(out: Path, report: dict[str, Any]) -> None:
    # merge generators another process (``--only``) wrote meanwhile; ours win
    path = out / "report.json"
    if path.is_file():
        try:
            theirs = json.loads(path.read_text()).get("generators", {})
        except (OSError, json.JSONDecodeError):
            theirs = {}
        report["generators"] = {**theirs, **report["generators"]}
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    (out / "report.md").write_text(format_report(report))


def format_report(report: dict[str, Any]) -> str:
    """The report as a Markdown page: classifier line and one row per generator."""
    lines = [f"# {report.get('name', 'generators')}", ""]
    clf = report.get("classifier")
    if clf:
        lines += [
            f"Reference classifier: test accuracy {clf['test_accuracy']:.4f}, {clf['parameters']} parameters, "
            f"trained {clf['train_seconds']:.0f} s wall / {clf.get('train_cpu_seconds', float('nan')):.0f} s CPU.",
            "",
        ]
    head = (
        "| generator | params | checkpoint MiB | train s wall | train s CPU | steps | RSS before MiB | peak RSS train MiB | peak RSS sample MiB "
        "| sample img/s | label agreement | CAS |"
    )
    lines += [head, "|" + "---|" * 12]
    # RSS is the whole process: Python, torch and the data set in memory are in every figure
    for name, g in report.get("generators", {}).items():

        def f(k: str, fmt: str = "{:.4f}", g: dict[str, Any] = g) -> str:
            v = g.get(k)
            return "-" if v is None else fmt.format(v)

        lines.append(
            f"| {name} ({g['kind']}) | {g['parameters']} | {f('checkpoint_mib', '{:.2f}')} | {f('train_seconds', '{:.0f}')} | {f('train_cpu_seconds', '{:.0f}')} "
            f"| {g['steps']} | {f('rss_before_train_mib', '{:.0f}')} | {f('peak_rss_train_mib', '{:.0f}')} | {f('peak_rss_sample_mib', '{:.0f}')} "
            f"| {f('sample_images_per_s', '{:.0f}')} | {f('label_agreement')} | {f('cas')} |"
        )
    return "\n".join(lines) + "\n"


# ---- the job ---------------------------------------------------------------------------------------


def _train_or_load_classifier(
    recipe: TrainRecipe, train: ArrayDataset, test: Batch, out: Path, resume: bool
) -> tuple[ReferenceClassifier, dict[str, Any]]:
    assert recipe.classifier is not None
    cdir = out / "classifier"
    if resume and (cdir / ckpt.CONFIG_NAME).is_file():
        clf = ReferenceClassifier.from_pretrained(cdir)
        meta = ckpt.read_config(cdir).get("meta", {})
        logger.info("reference classifier loaded from %s", cdir)
        return clf, dict(meta)
    kw = _classifier_kwargs(recipe.classifier, train)
    run = train_classifier(train.to_batch(uint8=True), seed=recipe.classifier.seed, test=test, **kw)
    meta = {
        "test_accuracy": run.test_accuracy,
        "train_seconds": run.seconds,
        "train_cpu_seconds": run.cpu_seconds,
        "parameters": count_parameters(run.model),
        "steps": recipe.classifier.steps,
        "precision": kw["precision"],
    }
    run.model.save_pretrained(cdir, meta=meta)
    return run.model, meta


def train_generator(
    gspec: GeneratorSpec,
    train: ArrayDataset,
    *,
    out_dir: Path,
    classify: Callable[[torch.Tensor], torch.Tensor] | None,
    progress: bool = False,
    resume: bool = False,
    workers: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Build ``gspec``'s generator, train it with the collapse monitor, and return it with its figures.

    With ``gspec.ensemble`` = M > 1, M members train in ``out_dir/members/{k}`` (seeds
    ``train.seed + k``; a member finished earlier is loaded, so a killed run resumes at the
    members it had not finished) and ``out_dir/model`` holds the ``GeneratorEnsemble`` of them.
    On the CPU the members train side by side in ``workers`` forked processes (``None``: the
    usable cores at torch's threads per process; see ``eval.forked``); each is the same function
    of its seed wherever it trains.
    """
    if gspec.ensemble > 1:
        return _train_ensemble(
            gspec, train, out_dir=out_dir, classify=classify, progress=progress, resume=resume, workers=workers
        )
    cls = GENERATORS.get(gspec.kind)
    c, h, _ = train.image_shape
    model_cfg = {"num_classes": train.num_classes, "channels": c, "image_size": h, **gspec.model}
    # the initial weights follow train.seed too (seed 0: the kinds' own default draw), so
    # generators that differ only in their seed are an ensemble, not one model's reruns
    init = torch_rng(gspec.train.seed, gspec.kind, "init")
    model = cls.from_config(model_cfg, where=f"generators[{gspec.name}].model", rng=init)
    mon_spec = gspec.train.monitor
    ref_idx = subset_per_class(
        train, min(mon_spec.collapse_per_class, int(train.class_counts().min())), seed=0
    )
    monitor = CollapseMonitor(
        train.num_classes,
        classify=classify,
        reference=ref_idx.to_batch(),
        per_class=mon_spec.collapse_per_class,
        every=mon_spec.collapse_every,
        min_coverage=mon_spec.min_label_coverage,
        min_diversity_ratio=mon_spec.min_diversity_ratio,
        stop=mon_spec.stop_on_collapse,
        seed=gspec.train.seed,
        start=mon_spec.judge_from(gspec.train.steps),
    )
    base_rss = rss_mib()
    reset_peak_rss()
    trainer = Trainer(
        model, train.to_batch(uint8=True), gspec.train, out_dir, monitors=[monitor], progress=progress
    )
    result = trainer.fit(resume=resume)
    figures = {
        "kind": gspec.kind,
        "steps": result.step,
        "train_seconds": result.seconds,
        "train_cpu_seconds": result.cpu_seconds,
        "rss_before_train_mib": base_rss,
        "peak_rss_train_mib": peak_rss_mib(),
        "parameters": count_parameters(model),
        "parameters_by_part": model.summary(),
        "checkpoint_mib": (out_dir / "model" / ckpt.WEIGHTS_NAME).stat().st_size / 2**20,
    }
    return trainer.model.eval(), figures


def trains_on_cpu(gspec: GeneratorSpec) -> bool:
    """Whether ``gspec`` trains on the CPU (``device`` cpu, or auto on a machine without CUDA):
    only then may it train in a forked process beside others."""
    return gspec.train.device == "cpu" or (gspec.train.device == "auto" and not torch.cuda.is_available())


@contextlib.contextmanager
def _members_bar(show: bool, what: str, total: int) -> Iterator[Callable[[], None]]:
    """A progress bar of finished members (forked members have no bar of their own); a no-op when not shown."""
    if not show:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task(what, total=total)
        yield lambda: bar.advance(task)


def _train_ensemble(
    gspec: GeneratorSpec,
    train: ArrayDataset,
    *,
    out_dir: Path,
    classify: Callable[[torch.Tensor], torch.Tensor] | None,
    progress: bool,
    resume: bool,
    workers: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    from augmentgen.generators.ensemble import MEMBERS_DIR, GeneratorEnsemble

    def done(k: int) -> Path:
        return out_dir / MEMBERS_DIR / str(k) / "done.json"

    todo = [(k,) for k in range(gspec.ensemble) if not (resume and done(k).is_file())]  # the rest: trained before a kill
    n = fork_workers(workers if trains_on_cpu(gspec) else 1, len(todo), "ensemble workers")

    def member(k: int) -> dict[str, Any]:
        mspec = gspec.model_copy(
            update={"ensemble": 1, "train": gspec.train.model_copy(update={"seed": gspec.train.seed + k})}
        )
        if n == 1:  # forked members stay off the console: the caller reports them
            logger.info("%s: ensemble member %d of %d (seed %d)", gspec.name, k + 1, gspec.ensemble, mspec.train.seed)
        _, fig = train_generator(
            mspec, train, out_dir=done(k).parent, classify=classify, progress=progress and n == 1, resume=resume
        )  # fmt: skip
        ckpt.write_json_atomic(done(k), fig)  # whole or absent: a kill mid-write leaves the member to train again
        return fig

    if n > 1:
        logger.info("%s: %d ensemble members on %d processes", gspec.name, len(todo), n)
    with _members_bar(progress and n > 1, f"{gspec.name}: {len(todo)} members on {n} processes", len(todo)) as advance:
        for (k,), fig in run_forked(member, todo, n, what=f"{gspec.name}: ensemble member"):
            if n > 1:
                logger.info("%s: ensemble member %d done in %.0f s", gspec.name, k + 1, fig["train_seconds"])
            advance()
    members = [ckpt.load_generator(done(k).parent / "model").eval() for k in range(gspec.ensemble)]
    figs = [json.loads(done(k).read_text()) for k in range(gspec.ensemble)]
    ens = GeneratorEnsemble(members)
    ens.save_pretrained(out_dir / "model", meta={"seeds": [gspec.train.seed + k for k in range(gspec.ensemble)]})
    figures = {
        "kind": gspec.kind,
        "ensemble": gspec.ensemble,
        "steps": sum(int(f["steps"]) for f in figs),
        "train_seconds": sum(float(f["train_seconds"]) for f in figs),
        "train_cpu_seconds": sum(float(f["train_cpu_seconds"]) for f in figs),
        "rss_before_train_mib": figs[0].get("rss_before_train_mib"),
        "peak_rss_train_mib": max((f.get("peak_rss_train_mib") or 0.0) for f in figs) or None,
        "parameters": count_parameters(ens),
        "parameters_by_part": ens.summary(),
        "checkpoint_mib": sum(float(f["checkpoint_mib"]) for f in figs),
    }
    return ens, figures


def run_train_recipe(
    recipe: TrainRecipe, *, progress: bool = False, resume: bool = False, only: list[str] | None = None
) -> dict[str, Any]:
    """Run a whole train recipe; returns (and writes) the report.

    Args:
        recipe: the validated recipe.
        progress: rich progress bars while generators train.
        resume: reuse a trained classifier and resume generator checkpoints in ``output_dir``.
        only: names of the generators to run (default: all).
    """
    if recipe.num_threads:
        torch.set_num_threads(recipe.num_threads)
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.json").write_text(recipe.model_dump_json(indent=2) + "\n")
    train, test_ds = load_data(recipe.data)
    test = test_ds.to_batch(uint8=True)
    report: dict[str, Any] = {
        "name": recipe.name,
        "data": {"train": len(train), "test": len(test_ds)},
        "generators": {},
    }
    if not resume:
        (out / "report.json").unlink(missing_ok=True)  # a fresh run starts a fresh report
    clf: ReferenceClassifier | None = None
    if recipe.classifier is not None:
        clf, report["classifier"] = _train_or_load_classifier(recipe, train, test, out, resume)
        logger.info("reference classifier test accuracy %.4f", report["classifier"]["test_accuracy"])
    _write(out, report)
    names = [g.name for g in recipe.generators]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise ValueError(f"--only names {unknown} are not generators of recipe '{recipe.name}' ({names})")
    for gspec in recipe.generators:
        if only and gspec.name not in only:
            continue
        model, fig = train_generator(
            gspec, train, out_dir=out / gspec.name, classify=clf.predict_logits if clf else None,
            progress=progress, resume=resume,
        )  # fmt: skip
        temp = gspec.sample_temperature
        reset_peak_rss()
        t0 = time.perf_counter()
        _, rate = generate_dataset(model, train.num_classes, 1000, seed=recipe.seed + 1, temperature=temp)
        fig["sample_images_per_s"] = rate
        fig["peak_rss_sample_mib"] = peak_rss_mib()
        fig["sample_seconds_10k"] = time.perf_counter() - t0
        if clf is not None:
            agree = label_agreement(
                model, clf, per_class=recipe.eval.agreement_per_class, seed=recipe.seed, temperature=temp
            )
            fig.update(
                label_agreement=agree.agreement,
                label_agreement_per_class=agree.per_class,
                label_coverage=agree.coverage,
            )
        if recipe.eval.cas and recipe.classifier is not None:
            cas = classification_accuracy_score(
                model, test, num_classes=train.num_classes, per_class=recipe.eval.cas_per_class, seed=recipe.seed,
                temperature=temp, classifier_kwargs=_classifier_kwargs(recipe.classifier, train),
            )  # fmt: skip
            fig.update(
                cas=cas.cas,
                cas_per_class=cas.per_class,
                cas_train_images=cas.n_train,
                cas_seconds=cas.train_seconds,
            )
        report["generators"][gspec.name] = fig
        _write(out, report)
        logger.info("%s: %s", gspec.name, {k: v for k, v in fig.items() if isinstance(v, float)})
    return report
