"""What every stateful check shares: the metric catalogue, result construction, feature accumulation.

A check accumulates in ``update(batch)`` (running its extractor on the images) or in
``update_features(features, labels)`` when features were computed once for several
checks, and computes once: ``compute()`` gives its main figure, ``compute_all()`` every
figure it measures, main first. Each result carries its metric key in ``details["key"]``;
gates match on that key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from augmentgen.checks.features import FeatureExtractor
from augmentgen.checks.gates import Gate, apply_gates, parse_gates
from augmentgen.core.batch import Batch
from augmentgen.core.check import CheckResult


@dataclass(frozen=True)
class MetricInfo:
    """How a metric is named and read.

    Args:
        key: snake_case key used by gates and metrics.json.
        title: display name; ``{space}`` is replaced by the feature space ("EffNet-Lite0").
        better: ``"higher"``, ``"lower"`` or ``"one"`` (closest to 1 is best).
    """

    key: str
    title: str
    better: str


METRICS: dict[str, MetricInfo] = {
    m.key: m
    for m in [
        MetricInfo("fid", "FID ({space})", "lower"),
        MetricInfo("kid", "KID ({space})", "lower"),
        MetricInfo("precision", "Precision ({space})", "higher"),
        MetricInfo("recall", "Recall ({space})", "higher"),
        MetricInfo("density", "Density ({space})", "one"),
        MetricInfo("coverage", "Coverage ({space})", "higher"),
        MetricInfo("vendi", "Vendi score ({space})", "higher"),
        MetricInfo("vendi_ratio", "Vendi score / real's ({space})", "one"),
        MetricInfo("class_spread_ratio", "Within-class spread / real's, worst class ({space})", "one"),
        MetricInfo("mode_coverage", "Mode coverage, worst class ({space})", "higher"),
        MetricInfo("duplicate_fraction", "Near-duplicate fraction ({space} + pHash)", "lower"),
        MetricInfo("exact_duplicate_fraction", "Exact duplicate fraction", "lower"),
        MetricInfo("label_agreement", "Label agreement ({space})", "higher"),
        MetricInfo("label_agreement_min", "Label agreement, worst class ({space})", "higher"),
        MetricInfo(
            "label_agreement_ratio", "Label agreement / the classifier's on real images ({space})", "one"
        ),
        MetricInfo("inception_score", "Inception Score ({space})", "higher"),
        MetricInfo("near_copy_fraction", "Near-copy fraction ({space})", "lower"),
        MetricInfo("psnr", "PSNR (dB)", "higher"),
        MetricInfo("ssim", "SSIM", "higher"),
    ]
}


def make_result(key: str, value: float, space: str = "", **details: Any) -> CheckResult:
    """A ``CheckResult`` named from the catalogue, with ``details["key"] = key``.

    Example:
        >>> make_result("fid", 3.2, "EffNet-Lite0").name
        'FID (EffNet-Lite0)'
    """
    info = METRICS.get(key)
    name = info.title.format(space=space) if info is not None else key
    return CheckResult(name=name, value=float(value), details={"key": key, "space": space, **details})


class FeatureCheck:
    """Base of the checks that work on features of the generated samples.

    Args:
        extractor: maps images to features in ``update``; may be None when only
            ``update_features`` is used.
        gates: gates applied by ``compute_all`` (list of ``"key op value"`` or a mapping).
        space: name of the feature space; defaults to ``extractor.label``.
    """

    name = "feature_check"
    needs_labels = False

    def __init__(
        self,
        extractor: FeatureExtractor | None,
        *,
        gates: Sequence[str] | Mapping[str, str | float] | Sequence[Gate] | None = None,
        space: str | None = None,
    ) -> None:
        self.extractor = extractor
        if gates and isinstance(gates, Sequence) and all(isinstance(g, Gate) for g in gates):
            self.gates: list[Gate] = list(gates)  # type: ignore[arg-type]
        else:
            self.gates = parse_gates(gates)  # type: ignore[arg-type]
        self.space = space if space is not None else (extractor.label if extractor is not None else "")
        self._feats: list[Tensor] = []
        self._labels: list[Tensor] = []

    def reset(self) -> None:
        self._feats, self._labels = [], []

    def update(self, batch: Batch) -> None:
        """Extract features of ``batch.image`` and accumulate them (with ``batch.label``)."""
        if self.extractor is None:
            raise ValueError(f"{type(self).__name__} has no extractor; call update_features instead")
        self.update_features(self.extractor(batch.image), batch.label)

    def update_features(self, features: Tensor, labels: Tensor | None = None) -> None:
        """Accumulate ``[B, D]`` features (and ``[B]`` conditioning labels)."""
        if features.ndim != 2:
            raise ValueError(f"{type(self).__name__}: features must be [B, D], got {tuple(features.shape)}")
        if self.needs_labels and labels is None:
            raise ValueError(f"{type(self).__name__} needs the conditioning labels (batch.label is None)")
        if labels is not None and labels.shape != (features.shape[0],):
            raise ValueError(f"labels {tuple(labels.shape)} do not match features {tuple(features.shape)}")
        self._feats.append(features.detach().float().cpu())
        if labels is not None:
            self._labels.append(labels.detach().cpu().to(torch.int64))

    def features(self) -> Tensor:
        if not self._feats:
            raise ValueError(f"{type(self).__name__}.compute called before any update")
        return torch.cat(self._feats)

    def labels(self) -> Tensor | None:
        if not self._labels:
            return None
        lab = torch.cat(self._labels)
        if lab.shape[0] != sum(f.shape[0] for f in self._feats):
            raise ValueError(f"{type(self).__name__}: some updates had labels and some did not")
        return lab

    def measure(self) -> list[CheckResult]:
        """The figures, before gates (override)."""
        raise NotImplementedError

    def compute_all(self) -> list[CheckResult]:
        return apply_gates(self.measure(), self.gates)

    def compute(self) -> CheckResult:
        return self.compute_all()[0]


def as_tensor_2d(x: Tensor, name: str) -> Tensor:
    """``x`` as float32 CPU ``[N, D]``, with a clear error otherwise."""
    if not isinstance(x, Tensor) or x.ndim != 2:
        raise ValueError(f"{name} must be an [N, D] tensor, got {getattr(x, 'shape', type(x).__name__)}")
    return x.detach().float().cpu()
