"""The downstream protocol: does augmentation, and synthetic data, make the classifier better?

The reference classifier is trained, with the same steps and settings, in up to four arms and
tested on real test data:

- ``real``: the real training subset only;
- ``real_classical``: plus ``classical_copies`` copies of it through the classical pipeline;
- ``real_classical_synthetic``: plus generated images from generators trained on the SAME
  real subset (the caller guarantees that; ``recipes.run`` does), trained on all at once
  (``mix``) or for half the steps, then fine-tuned on real + classical alone for the other half
  (``pretrain``);
- ``synthetic``: generated images only (Classification Accuracy Score, Ravuri & Vinyals 2019,
  https://arxiv.org/abs/1905.10887).

Each arm runs once per seed (the seed drives classifier init and order, augmentation draws and
generation); the result holds every accuracy and their mean and std.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from augmentgen.core.batch import Batch
from augmentgen.core.generator import SampleGenerator
from augmentgen.core.rng import derive_seed, torch_rng
from augmentgen.eval.cas import generate_dataset
from augmentgen.eval.classifier import DEFAULT_STEPS, ClassifierRun, train_classifier
from augmentgen.eval.forked import fork_workers, run_forked
from augmentgen.pipeline.label_mix import LabelMix

logger = logging.getLogger(__name__)

ARMS = ("real", "real_classical", "real_classical_synthetic", "synthetic")
SCHEDULES = ("mix", "pretrain")
CLASSICAL_ARMS = ("real_classical", "real_classical_synthetic")  # the arms a LabelMix trains on
PipelineFn = Callable[..., Any]


@dataclass
class ArmResult:
    """Accuracies of one arm, one per seed, and what it trained on."""

    arm: str
    seeds: list[int]
    accuracy: list[float]
    train_images: int
    seconds: float
    mean: float = 0.0
    std: float = 0.0

    def __post_init__(self) -> None:
        self.mean = statistics.fmean(self.accuracy) if self.accuracy else float("nan")
        self.std = statistics.stdev(self.accuracy) if len(self.accuracy) > 1 else 0.0


# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (scipy.stats.t.ppf(0.975, df),
# checked in the tests); beyond 30 the normal's 1.96 is within 2%.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def paired_difference(better: ArmResult, base: ArmResult) -> dict[str, Any]:
    """``better`` minus ``base``, seed by seed, over the seeds both ran: the honest form of a gain.

    Arms trained on the same seed share their classifier's initialisation (and real + classical
    and its synthetic arm the same classical copies), so a seed that draws a strong classifier
    tends to lift both: the per-seed differences can vary less than the arms' own accuracies,
    and their spread is what says whether a gain is more than the seeds' noise. Returns the
    differences, their mean, standard deviation and standard error, a 95% t interval of the
    mean, and ``verdict``: "higher" or "lower" when the interval excludes 0, else "within the
    seed noise" (also with fewer than two common seeds).

    Example:
        >>> a = ArmResult("real_classical", [0, 1, 2], [0.80, 0.82, 0.81], 10, 1.0)
        >>> b = ArmResult("real", [0, 1, 2], [0.78, 0.80, 0.80], 10, 1.0)
        >>> d = paired_difference(a, b)
        >>> round(d["mean"], 4), d["verdict"]
        (0.0167, 'higher')
    """
    seeds = [s for s in base.seeds if s in better.seeds]
    diffs = [better.accuracy[better.seeds.index(s)] - base.accuracy[base.seeds.index(s)] for s in seeds]
    n = len(diffs)
    out: dict[str, Any] = {"seeds": seeds, "per_seed": diffs, "mean": statistics.fmean(diffs) if n else float("nan")}
    if n < 2:
        return {**out, "std": None, "standard_error": None, "interval95": None, "verdict": "within the seed noise"}
    std = statistics.stdev(diffs)
    se = std / n**0.5
    half = (_T975[n - 2] if n - 1 <= len(_T975) else 1.96) * se
    lo, hi = out["mean"] - half, out["mean"] + half
    verdict = "higher" if lo > 0 else "lower" if hi < 0 else "within the seed noise"
    return {**out, "std": std, "standard_error": se, "interval95": [lo, hi], "verdict": verdict}


# (name in evaluation.json, the arm, the arm it is compared with)
GAINS = (
    ("classical_over_real", "real_classical", "real"),
    ("synthetic_over_classical", "real_classical_synthetic", "real_classical"),
)


@dataclass
class Evaluation:
    """All arms of one evaluation, ready for ``evaluation.json``."""

    arms: dict[str, ArmResult] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Settings, arms, ``gains`` (differences of the arms' means) and ``paired`` (their
        seed-by-seed form, ``paired_difference``)."""
        a = self.arms
        present = [(name, x, y) for name, x, y in GAINS if x in a and y in a]
        return {
            "settings": self.settings,
            "arms": {k: asdict(v) for k, v in a.items()},
            "gains": {name: a[x].mean - a[y].mean for name, x, y in present},
            "paired": {name: paired_difference(a[x], a[y]) for name, x, y in present},
        }


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x.cpu()
    return (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()


def augment_copies(data: Batch, pipeline: PipelineFn, copies: int, seed: int, chunk: int = 2048) -> Batch:
    """``copies`` pipeline-augmented copies of every row of ``data`` (uint8, labels kept), copy-major.

    Shape:
        ``[N, C, H, W]`` -> ``[copies * N, C, H, W]``.
    """
    parts, labels = [], []
    for c in range(copies):
        for i in range(0, data.batch_size, chunk):
            rows = data.index(torch.arange(i, min(i + chunk, data.batch_size))).as_float()
            out = pipeline(rows, rng=torch_rng(seed, "eval-classical", c, i))
            parts.append(_to_uint8(out.image))
            if out.label is None:
                raise ValueError("augment_copies: the pipeline dropped the labels")
            labels.append(out.label.cpu())
    return Batch(image=torch.cat(parts), label=torch.cat(labels))


@torch.no_grad()
def keep_confident(
    data: Batch, logits: Callable[[Tensor], Tensor], num_classes: int, per_class: int, hardest: bool = False
) -> Batch:
    """Per class, the ``per_class`` rows whose own label ``logits`` gives the highest probability
    (``hardest``: the lowest); classes in label order, ties in row order.

    Example:
        >>> b = Batch(image=torch.zeros(4, 1, 2, 2), label=torch.tensor([0, 0, 1, 1]))
        >>> logit = lambda x: torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
        >>> keep_confident(b, logit, 2, 1).label.tolist()
        [0, 1]
    """
    if data.label is None:
        raise ValueError("keep_confident: the rows need labels")
    prob = logits(data.image).float().softmax(1).gather(1, data.label[:, None].to(torch.int64))[:, 0].cpu()
    label = data.label.cpu()
    keep = []
    for c in range(num_classes):
        rows = (label == c).nonzero()[:, 0]
        keep.append(rows[prob[rows].argsort(descending=not hardest, stable=True)[:per_class]])
    return data.index(torch.cat(keep))


def synthetic_set(
    generators: Mapping[str, SampleGenerator],
    num_classes: int,
    per_class: int,
    seed: int,
    temperatures: Mapping[str, float | None] | None = None,
) -> Batch:
    """``per_class`` generated images per class, split evenly over ``generators`` (uint8 CPU Batch)."""
    if not generators:
        raise ValueError("synthetic_set: no generators given")
    names = sorted(generators)
    parts = []
    for k, name in enumerate(names):
        share = per_class // len(names) + (1 if k < per_class % len(names) else 0)
        if share == 0:
            continue
        temp = (temperatures or {}).get(name)
        data, _ = generate_dataset(
            generators[name],
            num_classes,
            share,
            seed=derive_seed(seed, "eval-synthetic", name),
            temperature=temp,
        )
        parts.append(data)
    return Batch(
        image=torch.cat([p.image for p in parts]),
        label=torch.cat([p.label for p in parts if p.label is not None]),
    )


def repeat_to_share(real_classical: Batch, synthetic_rows: int, share: float | None) -> Batch:
    """``real_classical`` repeated a whole number of times so ``synthetic_rows`` make about ``share`` of the whole.

    ``None`` (or a share the rows already stay under) keeps one copy: the natural share.

    Example:
        >>> rc = Batch(image=torch.zeros(500, 1, 2, 2, dtype=torch.uint8), label=torch.zeros(500, dtype=torch.int64))
        >>> repeat_to_share(rc, 2000, 0.5).batch_size  # 2000 synthetic against 4 x 500
        2000
    """
    if share is None:
        return real_classical
    if not 0.0 < share < 1.0:
        raise ValueError(f"synthetic_share must be in (0, 1), got {share}")
    reps = max(1, round(synthetic_rows * (1.0 - share) / (share * real_classical.batch_size)))
    return real_classical if reps == 1 else _concat(*([real_classical] * reps))


def train_with_synthetic(
    everything: Batch, real_classical: Batch, schedule: str, *, seed: int, test: Batch | None, **kw: Any
) -> ClassifierRun:
    """Train on ``everything`` (real + classical + synthetic) as ``schedule`` says (see the module docstring).

    ``mix``: all ``steps`` on ``everything``; ``pretrain``: half of them on ``everything``, then
    half on ``real_classical`` alone, starting from those weights.
    """
    if schedule == "mix":
        return train_classifier(everything, seed=seed, test=test, **kw)
    if schedule != "pretrain":
        raise ValueError(f"unknown synthetic_schedule {schedule!r}; known: {list(SCHEDULES)}")
    half = {**kw, "steps": max(1, int(kw.get("steps", DEFAULT_STEPS)) // 2)}
    first = train_classifier(everything, seed=seed, **half)
    return train_classifier(real_classical, seed=seed, test=test, init=first.model, **half)


def _concat(*batches: Batch) -> Batch:
    return Batch(
        image=torch.cat([_to_uint8(b.image) for b in batches]),
        label=torch.cat([b.label.cpu() for b in batches if b.label is not None]),
    )


def evaluate_arms(
    real: Batch,
    test: Batch,
    *,
    num_classes: int,
    pipeline: PipelineFn | None,
    generators: Mapping[str, SampleGenerator],
    arms: Sequence[str] = ARMS,
    seeds: Sequence[int] = (0, 1, 2),
    classical_copies: int = 4,
    synthetic_per_class: int = 500,
    synthetic_schedule: str = "mix",
    synthetic_share: float | None = None,
    temperatures: Mapping[str, float | None] | None = None,
    classifier_kwargs: Mapping[str, Any] | None = None,
    on_step: Callable[[str, int], None] | None = None,
    workers: int | None = None,
    synthetic_oversample: int = 1,
    confidence: Callable[[Tensor], Tensor] | None = None,
    label_mix: Mapping[str, Any] | None = None,
    synthetic_pipeline: PipelineFn | None = None,
) -> Evaluation:
    """Train the reference classifier in every arm and seed; accuracy on ``test``.

    Args:
        real: the real training subset (uint8 or float) with labels.
        test: the real test set with labels.
        num_classes: classes of the task.
        pipeline: classical ops, a callable ``(Batch, rng=torch.Generator) -> Batch``; needed by the classical arms.
        generators: label-conditioned generators trained on ``real`` only; needed by the synthetic arms.
        arms: which of ``ARMS`` to run.
        seeds: one run per seed per arm.
        classical_copies: augmented copies of each real image in the classical arms.
        synthetic_per_class: generated images per class, split over the generators.
        synthetic_schedule: ``"mix"`` or ``"pretrain"`` (see the module docstring); the
            ``real_classical_synthetic`` arm only.
        synthetic_share: in that arm, repeat real + classical so the synthetic rows are about
            this share of the training set (``None``: as many rows as they are).
        synthetic_oversample: draw this many times ``synthetic_per_class`` per class and keep the
            ``synthetic_per_class`` that ``confidence`` is surest of (``keep_confident``).
        confidence: images -> logits of a classifier trained on ``real`` only (the run's reference
            classifier); needed when ``synthetic_oversample`` > 1.
        classifier_kwargs: ``train_classifier`` settings shared by every arm (steps, batch_size, lr, config, augment).
        label_mix: ``LabelMix`` settings (mixup_alpha, cutmix_alpha, ...): the classical arms
            (``real_classical``, ``real_classical_synthetic``) learn MixUp / CutMix batches, seeded
            per evaluation seed; ``real`` and ``synthetic`` are trained as they are.
        synthetic_pipeline: ops (like ``pipeline``) every generated image of the
            ``real_classical_synthetic`` arm passes through once, seeded per evaluation seed; the
            ``synthetic`` arm (CAS) keeps the images as drawn. None: as drawn in both.
        on_step: called with ``(arm, seed)`` after each classifier is trained (progress), in
            the order they finish.
        workers: processes training classifiers at once (forked from this one, see
            ``eval.forked``); ``None``: the usable cores divided by torch's threads per process. Each
            (arm, seed) is trained by the same code from the same seeds wherever it runs, so the
            accuracies do not depend on it.

    Example:
        >>> ev = evaluate_arms(real, test, num_classes=10, pipeline=pipe, generators={}, arms=["real"], seeds=[0])  # doctest: +SKIP
        >>> ev.arms["real"].mean  # doctest: +SKIP
    """
    bad = sorted(set(arms) - set(ARMS))
    if bad:
        raise ValueError(f"evaluate_arms: unknown arm(s) {bad}; known: {list(ARMS)}")
    if synthetic_schedule not in SCHEDULES:
        raise ValueError(
            f"evaluate_arms: unknown synthetic_schedule {synthetic_schedule!r}; known: {list(SCHEDULES)}"
        )
    if real.label is None or test.label is None:
        raise ValueError("evaluate_arms: the real and test batches need labels")
    if pipeline is None and {"real_classical", "real_classical_synthetic"} & set(arms):
        raise ValueError("evaluate_arms: the classical arms need a pipeline (the recipe has none)")
    if not generators and {"real_classical_synthetic", "synthetic"} & set(arms):
        raise ValueError("evaluate_arms: the synthetic arms need at least one generator")
    if synthetic_oversample < 1 or (synthetic_oversample > 1 and confidence is None):
        raise ValueError(
            f"evaluate_arms: synthetic_oversample must be >= 1 and, above 1, comes with a confidence "
            f"classifier (got {synthetic_oversample}, confidence={'set' if confidence else None})"
        )
    kw = dict(classifier_kwargs or {})
    ev = Evaluation(
        settings={
            "seeds": list(seeds),
            "classical_copies": classical_copies,
            "synthetic_per_class": synthetic_per_class,
            "synthetic_schedule": synthetic_schedule,
            "synthetic_share": synthetic_share,
            "synthetic_oversample": synthetic_oversample,
            "real_images": real.batch_size,
            "test_images": test.batch_size,
            "generators": sorted(generators),
            "classifier": {k: v for k, v in kw.items() if k != "config"},
            "label_mix": dict(label_mix) if label_mix else None,
            "synthetic_pipeline": synthetic_pipeline is not None,
        }
    )
    if label_mix:
        LabelMix(num_classes, **label_mix)  # bad settings fail here, not in a forked worker
    real_u8 = _concat(real)

    def one(arm: str, seed: int) -> tuple[float, int, float]:
        """Train and test one arm at one seed -> (accuracy, training rows, seconds)."""
        t0 = time.perf_counter()
        parts = [] if arm == "synthetic" else [real_u8]
        if arm in ("real_classical", "real_classical_synthetic"):
            assert pipeline is not None
            parts.append(augment_copies(real_u8, pipeline, classical_copies, derive_seed(seed, "classical")))
        rc: Batch | None = None  # real + classical, in the arm that adds synthetic images to it
        if arm in ("real_classical_synthetic", "synthetic"):
            syn = synthetic_set(generators, num_classes, synthetic_per_class * synthetic_oversample, seed, temperatures)
            if synthetic_oversample > 1:
                assert confidence is not None
                syn = keep_confident(syn, confidence, num_classes, synthetic_per_class)
            if synthetic_pipeline is not None and arm == "real_classical_synthetic":
                syn = augment_copies(syn, synthetic_pipeline, 1, derive_seed(seed, "synthetic-classical"))
            if parts:
                rc = _concat(*parts)
                parts = [repeat_to_share(rc, syn.batch_size, synthetic_share)]
            parts.append(syn)
        data = _concat(*parts)
        mix = LabelMix(num_classes, seed=seed, **label_mix) if label_mix and arm in CLASSICAL_ARMS else None
        if rc is not None:
            run = train_with_synthetic(data, rc, synthetic_schedule, seed=seed, test=test, mix=mix, **kw)
        else:
            run = train_classifier(data, seed=seed, test=test, mix=mix, **kw)
        return float(run.test_accuracy or 0.0), data.batch_size, time.perf_counter() - t0

    tasks = [(arm, seed) for arm in arms for seed in seeds]
    done: dict[tuple[str, int], tuple[float, int, float]] = {}
    n = fork_workers(workers, len(tasks), "evaluate_arms: workers")
    for (arm, seed), res in run_forked(one, tasks, n, what="the evaluation of (arm, seed)"):
        done[arm, seed] = res
        logger.info("evaluate %s seed %d: accuracy %.4f on %d train images", arm, seed, res[0], res[1])
        if on_step is not None:
            on_step(arm, seed)
    for arm in arms:
        rows = [done[arm, seed] for seed in seeds]
        ev.arms[arm] = ArmResult(
            arm, list(seeds), [r[0] for r in rows], rows[-1][1] if rows else 0, sum(r[2] for r in rows)
        )
    return ev
