"""Run every check on a generated set against real data: features once per space, all figures, gates, timings.

This is what ``augmentgen check`` and the recipe runner call. Feature spaces:

- the main space (``features``, EffNet-Lite0 by default) for FID, KID, PRDC, Vendi,
  within-class spread and mode coverage;
- raw ``pixels`` (``copy_space``) for near-copies of training images and duplicates;
- the reference classifier's logits for label agreement and the Inception Score.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from augmentgen.checks.base import METRICS, make_result
from augmentgen.checks.diversity import ClassSpreadCheck, DuplicateCheck, ModeCoverageCheck, VendiCheck
from augmentgen.checks.features import (
    ClassifierFeatures,
    FeatureExtractor,
    as_image_tensor,
    create_extractor,
    extract_features,
)
from augmentgen.checks.fidelity import FIDCheck
from augmentgen.checks.functional.fidelity import fidelity_pass
from augmentgen.checks.gates import apply_gates, failed, parse_gates, result_key, unknown_gate_keys
from augmentgen.checks.labels import LabelCheck
from augmentgen.checks.memorization import MemorizationCheck
from augmentgen.core.check import CheckResult
from augmentgen.core.registry import did_you_mean
from augmentgen.core.rng import derive_seed
from augmentgen.data.sources import ArrayDataset

logger = logging.getLogger(__name__)

ALL_CHECKS = (
    "fid",
    "kid",
    "prdc",
    "vendi",
    "class_spread",
    "mode_coverage",
    "duplicates",
    "memorization",
    "labels",
)


class CheckConfig(BaseModel):
    """Settings of a check run (the ``checks:`` section of a recipe); unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    features: str = Field(
        default="effnet_lite0",
        description="main feature space: effnet_lite0, classifier, torchvision:NAME, timm:NAME",
    )
    feature_size: int | None = Field(
        default=None, description="effnet_lite0 input side; None: 64 for images up to 32 px, else up to 224"
    )
    copy_space: str = Field(default="pixels", description="space for near-copies and duplicates")
    checks: list[str] = Field(
        default_factory=lambda: list(ALL_CHECKS),
        description="the metrics computed: fid, kid, prdc (precision, recall, density, coverage), vendi, "
        "class_spread, mode_coverage, duplicates, memorization (near-copy fraction), labels "
        "(label agreement, per class, Inception Score with the reference classifier)",
    )
    gates: list[str] | dict[str, str] = Field(
        default_factory=list,
        description="pass/fail thresholds on the metrics: 'KEY OP VALUE' strings (e.g. "
        "'label_agreement >= 0.6', 'near_copy_fraction <= 0.01') or {KEY: 'OP VALUE'}; a failed "
        "gate, or one naming a metric that was not computed, makes check and run exit 1",
    )
    k: int = Field(default=5, ge=1, description="PRDC neighbour rank")
    kid_subsets: int = Field(default=100, ge=1, description="random subsets KID is averaged over")
    kid_subset_size: int = Field(
        default=1000, ge=2, description="images drawn from each set per KID subset (at most the smaller set)"
    )
    near_copy_threshold: float = Field(
        default=1 / 3,
        gt=0,
        description="a generated image is a near-copy when its distance to the nearest training image is "
        "below this share of that image's distance to its own nearest training neighbour (held-out "
        "Fashion-MNIST images: above 0.45)",
    )
    duplicate_radius_ratio: float = Field(
        default=0.3,
        ge=0,
        description="two generated images are near duplicates when closer than this share of the real "
        "set's median nearest-neighbour distance and their pHashes differ in at most duplicate_max_hamming bits",
    )
    duplicate_max_hamming: int = Field(
        default=8, ge=0, le=64, description="pHash bits (of 64) near duplicates may differ in"
    )
    modes_per_class: int = Field(
        default=10, ge=1, description="k-means modes of each class's real features that mode_coverage looks for"
    )
    is_splits: int = Field(default=10, ge=1, description="splits the Inception Score is averaged over")
    batch_size: int = Field(default=256, ge=1, description="images per pass of a feature extractor or the classifier")
    seed: int = Field(default=0, description="seeds the KID subsets and the mode-coverage k-means")

    def model_post_init(self, __context: Any) -> None:
        from augmentgen.core.registry import FEATURES  # filled by checks.features, imported above

        for key, spec in (("features", self.features), ("copy_space", self.copy_space)):
            name = spec.partition(":")[0]
            if name not in FEATURES:  # the weights load later; the name is known now
                known = FEATURES.names()
                raise ValueError(
                    f"checks.{key}: unknown feature space {spec!r}{did_you_mean([name], known)}; "
                    f"known: {', '.join(known)} (torchvision:NAME, timm:NAME for a model of theirs)"
                )
        bad = sorted(set(self.checks) - set(ALL_CHECKS))
        if bad:
            raise ValueError(f"checks.checks: unknown check(s) {bad}; known: {list(ALL_CHECKS)}")
        for gate in parse_gates(self.gates):  # fail early on a malformed gate or a metric no check measures
            if gate.key not in METRICS:
                raise ValueError(
                    f"checks.gates: unknown metric {gate.key!r}{did_you_mean([gate.key], METRICS)}; "
                    f"known: {', '.join(sorted(METRICS))}"
                )


@dataclass
class CheckRun:
    """Everything a check run measured, ready for metrics.json and the report."""

    results: list[CheckResult]
    timings: dict[str, float]
    generated: ArrayDataset
    real: ArrayDataset
    train: ArrayDataset
    space: str
    gates: list[str] = field(default_factory=list)
    unknown_gates: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckResult]:
        return failed(self.results)

    @property
    def passed(self) -> bool:
        return not self.failed and not self.unknown_gates

    def get(self, key: str) -> CheckResult | None:
        return next((r for r in self.results if result_key(r) == key), None)

    def metrics(self) -> dict[str, Any]:
        """The JSON-able summary written to ``metrics.json``."""
        out: dict[str, Any] = {}
        for r in self.results:
            out[result_key(r)] = {
                "name": r.name,
                "value": _json_float(r.value),
                "threshold": r.threshold,
                "passed": r.passed,
                "better": METRICS[result_key(r)].better if result_key(r) in METRICS else None,
                "details": _jsonable(r.details),
            }
        return {
            "passed": self.passed,
            "failed_gates": [g for r in self.failed for g in r.details.get("gates", [])],
            "unknown_gates": self.unknown_gates,
            "feature_space": self.space,
            "n_generated": len(self.generated),
            "n_real": len(self.real),
            "n_train": len(self.train),
            "metrics": out,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


def _json_float(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float):
        return _json_float(x)
    if isinstance(x, Tensor):
        return _jsonable(x.tolist())
    return x


def auto_feature_size(side: int) -> int:
    """EffNet-Lite0 input side for images of ``side`` px: 64 up to 32 px, else 2x rounded up to 32, at most 224.

    Example:
        >>> auto_feature_size(28), auto_feature_size(64), auto_feature_size(300)
        (64, 128, 224)
    """
    return int(min(224, max(64, 32 * math.ceil(2 * side / 32))))


class _Timer:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0


def _images(ds: ArrayDataset) -> Tensor:
    return as_image_tensor(ds.images)  # uint8 [N, C, H, W]


def _classifier_logits(
    classifier: nn.Module, images: Tensor, batch_size: int, device: torch.device | str | None
) -> Tensor:
    dev = torch.device(device) if device is not None else next(classifier.parameters()).device
    classifier = classifier.to(dev).eval()
    out = []
    with torch.inference_mode():
        for s in range(0, images.shape[0], batch_size):
            x = images[s : s + batch_size].to(dev).float() / 255.0
            out.append(classifier(x).float().cpu())
    return torch.cat(out)


def _prdc_kid(
    real: Tensor, fake: Tensor, cfg: CheckConfig, wanted: set[str], space: str
) -> list[CheckResult]:
    """PRDC and KID from one pass over the Gram matrices (same values as ``PRDCCheck`` and ``KIDCheck``)."""
    rng = np.random.default_rng(derive_seed(cfg.seed, "kid")) if "kid" in wanted else None
    vals = fidelity_pass(
        real, fake, k=cfg.k, rng=rng, subsets=cfg.kid_subsets, subset_size=cfg.kid_subset_size
    )
    out = []
    if "kid" in wanted:
        out.append(
            make_result(
                "kid",
                vals["kid"],
                space,
                std=vals["kid_std"],
                subsets=cfg.kid_subsets,
                subset_size=cfg.kid_subset_size,
            )
        )
    if "prdc" in wanted:
        out.extend(
            make_result(key, vals[key], space, k=cfg.k)
            for key in ("precision", "recall", "density", "coverage")
        )
    return out


def build_extractor(config: CheckConfig, side: int, classifier: nn.Module | None) -> FeatureExtractor:
    """The main extractor named by ``config.features`` (``classifier`` needs ``classifier``)."""
    if config.features == "classifier":
        if classifier is None:
            raise ValueError("checks.features is 'classifier' but no reference classifier was given")
        return ClassifierFeatures(classifier)
    if config.features == "effnet_lite0":
        return create_extractor("effnet_lite0", image_size=config.feature_size or auto_feature_size(side))
    return create_extractor(config.features)


def run_checks(
    generated: ArrayDataset,
    real: ArrayDataset,
    *,
    config: CheckConfig | None = None,
    train: ArrayDataset | None = None,
    classifier: nn.Module | None = None,
    device: torch.device | str | None = None,
    cache_dir: str | Path | None = None,
) -> CheckRun:
    """Measure ``generated`` against ``real`` with every configured check and apply the gates.

    Args:
        generated: generated samples with their conditioning labels.
        real: real samples (same classes) for fidelity and diversity.
        config: what to run and how; defaults to everything.
        train: the generator's training set for memorization (defaults to ``real``).
        classifier: reference classifier (logits from ``[B, C, H, W]`` floats in [0, 1], plus
            ``features`` for the ``classifier`` space); label checks are skipped without it.
        device: where features and logits are computed.
        cache_dir: feature cache folder, or None for no cache.

    Example:
        >>> from augmentgen.data import load_digits
        >>> d = load_digits("train")
        >>> cfg = CheckConfig(features="pixels", checks=["fid", "prdc"], gates=["recall >= 0.5"])
        >>> run_checks(d.select(range(200)), d.select(range(200, 400)), config=cfg).passed
        True
    """
    cfg = config or CheckConfig()
    train = real if train is None else train
    if generated.num_classes != real.num_classes:
        raise ValueError(
            f"generated set has {generated.num_classes} classes, real set '{real.name}' has {real.num_classes}"
        )
    gen_img, real_img = _images(generated), _images(real)
    if gen_img.shape[1:] != real_img.shape[1:]:
        raise ValueError(
            f"generated images are {tuple(gen_img.shape[1:])}, real '{real.name}' are {tuple(real_img.shape[1:])}"
        )
    timer = _Timer()
    wanted = set(cfg.checks)
    if classifier is None and "labels" in wanted:
        logger.warning("no reference classifier given: label agreement and Inception Score are skipped")
        wanted.discard("labels")
    side = int(max(gen_img.shape[-2:]))
    kw: dict[str, Any] = {"batch_size": cfg.batch_size, "device": device, "cache_dir": cache_dir}
    gen_lab = torch.from_numpy(generated.labels)
    real_lab = torch.from_numpy(real.labels)

    main = wanted & {"fid", "kid", "prdc", "vendi", "class_spread", "mode_coverage"}
    results: list[CheckResult] = []
    space = ""
    if main:
        ext = build_extractor(cfg, side, classifier)
        space = ext.label
        with timer(f"features: {space}"):
            fg = extract_features(ext, gen_img, **kw)
            fr = extract_features(ext, real_img, **kw)
        spec: list[tuple[str, Any]] = [
            ("fid", lambda: FIDCheck(None, fr, space=space)),
            ("vendi", lambda: VendiCheck(None, fr, space=space)),
            (
                "class_spread",
                lambda: ClassSpreadCheck(None, fr, real_lab, class_names=real.classes, space=space),
            ),
            (
                "mode_coverage",
                lambda: ModeCoverageCheck(
                    None,
                    fr,
                    real_lab,
                    class_names=real.classes,
                    modes=cfg.modes_per_class,
                    seed=cfg.seed,
                    space=space,
                ),
            ),
        ]
        for name, make in spec:
            if name in wanted:
                with timer(name):
                    chk = make()
                    chk.update_features(fg, gen_lab)
                    results.extend(chk.compute_all())
            if name == "fid" and wanted & {"kid", "prdc"}:
                with timer(" + ".join(sorted(wanted & {"kid", "prdc"}))):
                    # the Gram-matrix pass is the heaviest math: run it where the features were made
                    dev = torch.device(device) if device is not None else torch.device("cpu")
                    results.extend(_prdc_kid(fr.to(dev), fg.to(dev), cfg, wanted, space))

    if wanted & {"duplicates", "memorization"}:
        cext = create_extractor(cfg.copy_space)
        with timer(f"features: {cext.label}"):
            cg = extract_features(cext, gen_img, **kw)
            ct = extract_features(cext, _images(train), **kw) if "memorization" in wanted else None
            cr = extract_features(cext, real_img, **kw) if "duplicates" in wanted else None
        if ct is not None:
            with timer("memorization"):
                mem = MemorizationCheck(None, ct, threshold=cfg.near_copy_threshold, space=cext.label)
                mem.update_features(cg)
                results.extend(mem.compute_all())
        if cr is not None:
            with timer("duplicates"):
                dup = DuplicateCheck(
                    None,
                    cr,
                    radius_ratio=cfg.duplicate_radius_ratio,
                    max_hamming=cfg.duplicate_max_hamming,
                    space=cext.label,
                )
                for s in range(0, gen_img.shape[0], cfg.batch_size):
                    dup.update_images(gen_img[s : s + cfg.batch_size], cg[s : s + cfg.batch_size])
                results.extend(dup.compute_all())

    if "labels" in wanted and classifier is not None:
        with timer("labels (classifier logits)"):
            logits = _classifier_logits(classifier, gen_img, cfg.batch_size, device)
            lab = LabelCheck(
                None,
                real.num_classes,
                class_names=real.classes,
                splits=cfg.is_splits,
                space=type(classifier).__name__,
            )
            lab.update_logits(logits, gen_lab)
            label_results = lab.compute_all()
            # the same classifier on the real images: the agreement a perfect generator would get
            real_pred = _classifier_logits(classifier, real_img, cfg.batch_size, device).argmax(1)
            real_acc = float((real_pred == real_lab).double().mean())
            ratio = label_results[0].value / real_acc if real_acc > 0 else float("nan")
            results.extend(label_results)
            results.append(make_result("label_agreement_ratio", ratio, lab.space, real_agreement=real_acc))

    gates = parse_gates(cfg.gates)
    results = apply_gates(results, gates)
    unknown = unknown_gate_keys(results, gates)
    if unknown:
        logger.warning("gates on metrics that were not measured: %s", unknown)
    return CheckRun(
        results=results,
        timings=timer.times,
        generated=generated,
        real=real,
        train=train,
        space=space,
        gates=[str(g) for g in gates],
        unknown_gates=unknown,
    )
