"""Diversity checks: Vendi score, within-class spread, per-class mode coverage, duplicates within the generated set."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from augmentgen.checks.base import FeatureCheck, as_tensor_2d, make_result
from augmentgen.checks.features import FeatureExtractor
from augmentgen.checks.functional.distances import kth_neighbour_distances
from augmentgen.checks.functional.diversity import class_spread_ratio, mode_coverage, vendi_score
from augmentgen.checks.functional.duplicates import (
    content_hashes,
    duplicate_clusters,
    duplicate_fraction,
    perceptual_hash,
)
from augmentgen.core.batch import Batch
from augmentgen.core.check import CheckResult
from augmentgen.core.registry import CHECKS
from augmentgen.core.rng import derive_seed


@CHECKS.register("vendi")
class VendiCheck(FeatureCheck):
    """Vendi score of the generated set (cosine kernel), and its ratio to the real set's when given.

    Example:
        >>> c = VendiCheck(None, space="toy"); c.update_features(torch.eye(4))
        >>> round(c.compute().value, 6)
        4.0
    """

    name = "vendi"

    def __init__(self, extractor: FeatureExtractor | None, real: Tensor | None = None, **kw: Any) -> None:
        super().__init__(extractor, **kw)
        self.real_vendi = vendi_score(as_tensor_2d(real, "real features")) if real is not None else None

    def measure(self) -> list[CheckResult]:
        v = vendi_score(self.features())
        out = [make_result("vendi", v, self.space, real=self.real_vendi)]
        if self.real_vendi is not None:
            out.append(make_result("vendi_ratio", v / self.real_vendi, self.space, real=self.real_vendi))
        return out


class _PerClassCheck(FeatureCheck):
    needs_labels = True

    def __init__(
        self,
        extractor: FeatureExtractor | None,
        real: Tensor,
        real_labels: Tensor,
        *,
        class_names: list[str] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(extractor, **kw)
        self.real = as_tensor_2d(real, "real features")
        self.real_labels = real_labels.detach().cpu().to(torch.int64)
        if self.real_labels.shape != (self.real.shape[0],):
            raise ValueError(f"real_labels {tuple(real_labels.shape)} do not match real {tuple(real.shape)}")
        self.class_names = class_names

    def _name(self, c: int) -> str:
        return self.class_names[c] if self.class_names is not None and c < len(self.class_names) else str(c)

    def _fake(self) -> tuple[Tensor, Tensor]:
        lab = self.labels()
        if lab is None:
            raise ValueError(f"{type(self).__name__} needs conditioning labels")
        return self.features(), lab


@CHECKS.register("class_spread")
class ClassSpreadCheck(_PerClassCheck):
    """Per class, mean pairwise feature distance of generated over real samples; the worst (lowest) class is the figure.

    A ratio well below 1 means the class collapsed onto fewer looks than the real data has.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> real, y = torch.randn(60, 3, generator=g), torch.arange(60) % 2
        >>> c = ClassSpreadCheck(None, real, y, space="toy"); c.update_features(real * 0.5, y)
        >>> round(c.compute().value, 3)
        0.5
    """

    name = "class_spread"

    def measure(self) -> list[CheckResult]:
        fake, lab = self._fake()
        ratios = class_spread_ratio(fake, lab, self.real, self.real_labels)
        if not ratios:
            raise ValueError("ClassSpreadCheck: no class has >= 2 samples on both sides")
        worst = min(ratios, key=lambda c: ratios[c])
        return [
            make_result(
                "class_spread_ratio",
                ratios[worst],
                self.space,
                worst_class=self._name(worst),
                per_class={self._name(c): v for c, v in ratios.items()},
                mean=float(np.mean(list(ratios.values()))),
            )
        ]


@CHECKS.register("mode_coverage")
class ModeCoverageCheck(_PerClassCheck):
    """Per class, the share of the real data's k-means modes that generated samples of that class populate.

    Args:
        modes: k-means modes per class.
        min_share: a mode is covered when its share of fakes is >= ``min_share`` x its share of reals.
        seed: seeds the k-means++ initialisation.
    """

    name = "mode_coverage"

    def __init__(
        self, *args: Any, modes: int = 10, min_share: float = 0.25, seed: int = 0, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.modes, self.min_share, self.seed = modes, min_share, seed

    def measure(self) -> list[CheckResult]:
        fake, lab = self._fake()
        per: dict[str, float] = {}
        counts: dict[str, dict[str, list[int]]] = {}
        for c in sorted(set(self.real_labels.tolist())):
            r = self.real[self.real_labels == c]
            f = fake[lab == c]
            name = self._name(int(c))
            if f.shape[0] == 0:
                per[name] = 0.0
                continue
            g = torch.Generator().manual_seed(derive_seed(self.seed, "modes", int(c)))
            cov, rc, fc = mode_coverage(r, f, modes=self.modes, rng=g, min_share=self.min_share)
            per[name], counts[name] = cov, {"real": rc.tolist(), "fake": fc.tolist()}
        worst = min(per, key=lambda k: per[k])
        return [
            make_result(
                "mode_coverage",
                per[worst],
                self.space,
                worst_class=worst,
                per_class=per,
                mean=float(np.mean(list(per.values()))),
                modes=self.modes,
                counts=counts,
            )
        ]


@CHECKS.register("duplicates")
class DuplicateCheck(FeatureCheck):
    """Exact and near duplicates within the generated set (perceptual hash plus feature distance).

    A pair is a near duplicate when its features are closer than ``radius_ratio`` x the
    median nearest-neighbour distance of the real set and its pHashes differ in at most
    ``max_hamming`` of 64 bits. Needs the images (``update``, or ``update_images``).

    Args:
        extractor: feature space of the distance test (``pixels`` in the suite).
        real: real features in the same space, to set the radius.
        radius_ratio: radius as a share of the real median 1-NN distance; 0.3 is below the
            0.1% quantile of distinct Fashion-MNIST test images (0.42).
        max_hamming: pHash bits that may differ.
        keep: clusters kept in ``details`` (largest first).
    """

    name = "duplicates"

    def __init__(
        self,
        extractor: FeatureExtractor | None,
        real: Tensor,
        *,
        radius_ratio: float = 0.3,
        max_hamming: int = 8,
        keep: int = 12,
        **kw: Any,
    ) -> None:
        super().__init__(extractor, **kw)
        r = as_tensor_2d(real, "real features")
        self.real_median_nn = float(kth_neighbour_distances(r, 1).median())
        self.radius = radius_ratio * self.real_median_nn
        self.max_hamming, self.keep = max_hamming, keep
        self._hashes: list[Tensor] = []
        self._digests: list[str] = []

    def reset(self) -> None:
        super().reset()
        self._hashes, self._digests = [], []

    def update(self, batch: Batch) -> None:
        if self.extractor is None:
            raise ValueError("DuplicateCheck has no extractor; call update_images with features")
        self.update_images(batch.image, self.extractor(batch.image), batch.label)

    def update_images(self, images: Tensor, features: Tensor, labels: Tensor | None = None) -> None:
        """Accumulate ``[B, C, H, W]`` images with their ``[B, D]`` features."""
        if images.shape[0] != features.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {features.shape[0]} feature rows")
        self.update_features(features, labels)
        self._hashes.append(perceptual_hash(images).cpu())
        self._digests.extend(content_hashes(images))

    def measure(self) -> list[CheckResult]:
        feats = self.features()
        if len(self._digests) != feats.shape[0]:
            raise ValueError(
                "DuplicateCheck needs images: use update(batch) or update_images, not update_features"
            )
        hashes = torch.cat(self._hashes)
        n = feats.shape[0]
        exact = duplicate_clusters(hashes, feats, feature_radius=0.0, exact=self._digests)
        near = duplicate_clusters(
            hashes, feats, feature_radius=self.radius, max_hamming=self.max_hamming, exact=self._digests
        )
        return [
            make_result(
                "duplicate_fraction",
                duplicate_fraction(near, n),
                self.space,
                clusters=near[: self.keep],
                n_clusters=len(near),
                radius=self.radius,
                max_hamming=self.max_hamming,
            ),
            make_result(
                "exact_duplicate_fraction", duplicate_fraction(exact, n), self.space, n_clusters=len(exact)
            ),
        ]
