"""Memorization check: the share of generated samples that are near-copies of training samples, and the worst pairs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from augmentgen.checks.base import FeatureCheck, as_tensor_2d, make_result
from augmentgen.checks.features import FeatureExtractor
from augmentgen.checks.functional.memorization import MemorizationScores, memorization_scores, train_radii
from augmentgen.core.check import CheckResult
from augmentgen.core.registry import CHECKS


@CHECKS.register("memorization")
class MemorizationCheck(FeatureCheck):
    """Near-copy fraction: generated samples whose nearest training sample is much closer than training samples are to each other.

    Args:
        extractor: feature space; raw ``pixels`` is the default in the suite (near-copies
            with a little noise stay near in pixels, not in ImageNet features).
        train: ``[N, D]`` features of the training set the generator learned from.
        threshold: a sample is a near-copy when its distance ratio is below this; held-out
            Fashion-MNIST images have ratios above 0.45 (0.1% quantile), copies ~0.
        worst: how many of the most suspicious pairs to keep in ``details``.

    Example:
        >>> import torch
        >>> train = torch.randn(100, 8, generator=torch.Generator().manual_seed(0))
        >>> c = MemorizationCheck(None, train, space="toy"); c.update_features(train[:10].clone())
        >>> c.compute().value
        1.0
    """

    name = "memorization"

    def __init__(
        self,
        extractor: FeatureExtractor | None,
        train: Tensor,
        *,
        threshold: float = 1 / 3,
        floor: float = 0.25,
        worst: int = 16,
        **kw: Any,
    ) -> None:
        super().__init__(extractor, **kw)
        self.train = as_tensor_2d(train, "train features")
        self.radii = train_radii(self.train)
        self.threshold, self.floor, self.worst = threshold, floor, worst
        self.scores: MemorizationScores | None = None

    def measure(self) -> list[CheckResult]:
        s = memorization_scores(self.features(), self.train, radii=self.radii, floor=self.floor)
        self.scores = s
        flagged = s.near_copies(self.threshold)
        worst = s.worst(min(self.worst, s.ratio.shape[0]))
        q = s.ratio.quantile(s.ratio.new_tensor([0.001, 0.01, 0.1, 0.5]))
        edges = [i * 0.05 for i in range(41)]  # ratio histogram on [0, 2]; larger ratios land in the last bin
        hist = torch.histc(s.ratio.clamp(0, 2).float(), bins=40, min=0, max=2).tolist()
        return [
            make_result(
                "near_copy_fraction",
                float(flagged.double().mean()),
                self.space,
                threshold_ratio=self.threshold,
                flagged=int(flagged.sum()),
                n=int(s.ratio.shape[0]),
                histogram={"edges": edges, "counts": [int(c) for c in hist]},
                ratio_quantiles={
                    "0.1%": float(q[0]),
                    "1%": float(q[1]),
                    "10%": float(q[2]),
                    "50%": float(q[3]),
                },
                worst_pairs=[
                    {"generated": int(i), "train": int(s.neighbour[i]), "ratio": float(s.ratio[i])}
                    for i in worst
                ],
            )
        ]
