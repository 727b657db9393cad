"""Memorization math: how close each generated sample sits to the training data, on the training data's own scale.

For generated sample ``j`` with nearest training sample ``i*`` at distance ``d_j``, the
ratio is ``d_j / r_{i*}`` where ``r_i`` is the distance from training sample ``i`` to its
nearest other training sample. A held-out real image has ratios around 1; a copy of a
training image has ratio 0. ``r`` is floored at ``floor * median(r)`` so that exact
duplicates inside the training set do not make every neighbour look infinitely far.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from augmentgen.checks.functional.distances import DEFAULT_CHUNK, kth_neighbour_distances, nearest_neighbours


@dataclass(frozen=True)
class MemorizationScores:
    """Per-sample memorization figures.

    Shape:
        ratio, distance, neighbour: ``[M]`` (one per generated sample); train_radius ``[N]``.
    """

    ratio: Tensor
    distance: Tensor
    neighbour: Tensor
    train_radius: Tensor

    def near_copies(self, threshold: float) -> Tensor:
        """``[M]`` bool: samples whose ratio is below ``threshold``."""
        return self.ratio < threshold

    def near_copy_fraction(self, threshold: float) -> float:
        return float(self.near_copies(threshold).double().mean())

    def worst(self, n: int) -> Tensor:
        """Indices of the ``n`` lowest ratios, most suspicious first."""
        return self.ratio.argsort()[:n]


def train_radii(train: Tensor, *, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """``[N]`` distance of every training sample to its nearest other training sample."""
    return kth_neighbour_distances(train, 1, chunk=chunk)


def memorization_scores(
    fake: Tensor,
    train: Tensor,
    *,
    radii: Tensor | None = None,
    floor: float = 0.25,
    chunk: int = DEFAULT_CHUNK,
) -> MemorizationScores:
    """Nearest-training-neighbour distance of each generated sample, relative to the local training scale.

    Args:
        fake: ``[M, D]`` features of generated samples.
        train: ``[N, D]`` features of the training samples.
        radii: precomputed ``train_radii(train)`` (reuse it across calls).
        floor: lower bound on a training radius, as a fraction of the median radius.

    Example:
        >>> train = torch.tensor([[0.0], [1.0], [2.0]])
        >>> s = memorization_scores(torch.tensor([[1.0], [1.5]]), train)
        >>> [round(v, 4) for v in s.ratio.tolist()]
        [0.0, 0.5]
    """
    r = train_radii(train, chunk=chunk) if radii is None else radii
    if r.shape[0] != train.shape[0]:
        raise ValueError(f"radii has {r.shape[0]} rows, train has {train.shape[0]}")
    r_floor = r.clamp_min(float(r.median()) * floor) if floor > 0 else r
    d, i = nearest_neighbours(fake, train, k=1, chunk=chunk)
    d, i = d[:, 0], i[:, 0]
    ratio = d / r_floor[i].clamp_min(torch.finfo(d.dtype).tiny)
    return MemorizationScores(ratio=ratio, distance=d, neighbour=i, train_radius=r)
