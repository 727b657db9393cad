"""Fidelity checks: FID, KID and precision/recall/density/coverage of generated features against real ones."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from augmentgen.checks.base import FeatureCheck, as_tensor_2d, make_result
from augmentgen.checks.features import FeatureExtractor
from augmentgen.checks.functional.fidelity import (
    frechet_distance,
    frechet_distance_low_rank,
    gaussian_stats,
    kid,
    low_rank_pays,
    prdc,
    scaled_centred,
)
from augmentgen.core.check import CheckResult
from augmentgen.core.registry import CHECKS
from augmentgen.core.rng import derive_seed


@CHECKS.register("fid")
class FIDCheck(FeatureCheck):
    """Frechet distance between Gaussians fitted to real and generated features.

    Args:
        extractor: feature extractor (the metric is named after it: "FID (EffNet-Lite0)").
        real: ``[N, D]`` real features from the same extractor.
        **kw: ``gates``, ``space`` (see ``FeatureCheck``).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> c = FIDCheck(None, torch.randn(300, 4, generator=g), space="toy")
        >>> c.update_features(torch.randn(300, 4, generator=g) + 3)
        >>> c.compute().value > 30
        True
    """

    name = "fid"

    def __init__(self, extractor: FeatureExtractor | None, real: Tensor, **kw: Any) -> None:
        super().__init__(extractor, **kw)
        real = as_tensor_2d(real, "real features")
        self.n_real, self.dim = int(real.shape[0]), int(real.shape[1])
        # fewer rows than dimensions (pixel features): keep the [N, D] factor, not a singular [D, D] covariance
        self.real_mean, factor = scaled_centred(real)
        self.real_factor: Tensor | None = factor if self.n_real < self.dim else None
        self.real_cov: Tensor | None = None if self.n_real < self.dim else factor.T @ factor

    def measure(self) -> list[CheckResult]:
        fake = self.features()
        if self.real_factor is not None and low_rank_pays(self.n_real, int(fake.shape[0]), self.dim):
            value = frechet_distance_low_rank(self.real_mean, self.real_factor, *scaled_centred(fake))
        else:
            if self.real_cov is None:
                assert self.real_factor is not None
                self.real_cov = self.real_factor.T @ self.real_factor
            value = frechet_distance(self.real_mean, self.real_cov, *gaussian_stats(fake))
        return [make_result("fid", value, self.space, n_real=self.n_real, n_fake=int(fake.shape[0]))]


@CHECKS.register("kid")
class KIDCheck(FeatureCheck):
    """Kernel Inception Distance (unbiased MMD^2, cubic kernel) averaged over random subsets, with its std.

    Args:
        extractor: feature extractor.
        real: ``[N, D]`` real features.
        subsets, subset_size: as torchmetrics (100 x 1000).
        seed: seeds the subset draws, so ``compute`` is repeatable.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> c = KIDCheck(None, torch.randn(200, 4, generator=g), subsets=10, subset_size=100, space="toy")
        >>> c.update_features(torch.randn(200, 4, generator=g) + 2)
        >>> c.compute().value > 1
        True
    """

    name = "kid"

    def __init__(
        self,
        extractor: FeatureExtractor | None,
        real: Tensor,
        *,
        subsets: int = 100,
        subset_size: int = 1000,
        seed: int = 0,
        **kw: Any,
    ) -> None:
        super().__init__(extractor, **kw)
        self.real = as_tensor_2d(real, "real features")
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed

    def measure(self) -> list[CheckResult]:
        rng = np.random.default_rng(derive_seed(self.seed, "kid"))
        mean, std = kid(
            self.real, self.features(), rng=rng, subsets=self.subsets, subset_size=self.subset_size
        )
        return [
            make_result("kid", mean, self.space, std=std, subsets=self.subsets, subset_size=self.subset_size)
        ]


@CHECKS.register("prdc")
class PRDCCheck(FeatureCheck):
    """Precision, recall, density and coverage with k-NN balls (Naeem et al. 2020); precision is the main figure.

    Args:
        extractor: feature extractor.
        real: ``[N, D]`` real features.
        k: neighbour rank of the balls (5 as recommended by the paper).

    Example:
        >>> import torch
        >>> real = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
        >>> c = PRDCCheck(None, real, space="toy"); c.update_features(real[:100] + 0.01)
        >>> [r.details["key"] for r in c.compute_all()]
        ['precision', 'recall', 'density', 'coverage']
    """

    name = "prdc"

    def __init__(self, extractor: FeatureExtractor | None, real: Tensor, *, k: int = 5, **kw: Any) -> None:
        super().__init__(extractor, **kw)
        self.real = as_tensor_2d(real, "real features")
        self.k = k

    def measure(self) -> list[CheckResult]:
        vals = prdc(self.real, self.features(), k=self.k)
        return [
            make_result(key, vals[key], self.space, k=self.k)
            for key in ("precision", "recall", "density", "coverage")
        ]
