"""Duplicate detection: exact content hashes, DCT perceptual hashes, and clusters of near-duplicates.

Perceptual hash (pHash): grey image resized to 32x32, 2-D DCT-II, the 8x8 lowest
frequencies without the DC term thresholded at their median, 64 bits. Hamming distances go
through a matmul on +-1 codes, so all pairs of 10k hashes cost one 10k x 10k x 64 product.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from augmentgen.checks.functional.distances import DEFAULT_CHUNK, iter_sq_distance_chunks

HASH_BITS = 64


def _dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    k = torch.arange(n, dtype=dtype, device=device)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    m[0] *= 1 / math.sqrt(2)
    return m * math.sqrt(2 / n)


def to_grey(images: Tensor) -> Tensor:
    """``[B, 1, H, W]`` float grey images from ``[B, C, H, W]`` (uint8 or float in [0, 1])."""
    if images.ndim != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    x = images.float() / 255.0 if not images.is_floating_point() else images.float()
    if x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)


def perceptual_hash(images: Tensor) -> Tensor:
    """64-bit DCT perceptual hashes as ``[B, 64]`` bool bit vectors.

    Shape:
        images ``[B, C, H, W]`` uint8 or float in [0, 1] -> ``[B, 64]`` bool.

    Example:
        >>> img = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        >>> bool((perceptual_hash(img)[0] == perceptual_hash(img[:1])[0]).all())
        True
    """
    g = F.interpolate(to_grey(images), size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    d = _dct_matrix(32, g.dtype, g.device)
    coeffs = d @ g[:, 0] @ d.T  # [B, 32, 32]
    low = coeffs[:, :8, :8].reshape(-1, 64)[:, 1:]  # drop DC: 63 terms
    med = low.median(dim=1, keepdim=True).values
    bits = low > med
    # The 64th bit: whether the mean brightness is above 1/2, so flat black and white differ.
    bright = g.mean((1, 2, 3)) > 0.5
    return torch.cat([bits, bright[:, None]], 1)


def hamming_distances(a: Tensor, b: Tensor | None = None) -> Tensor:
    """Pairwise Hamming distances between rows of bool codes.

    Shape:
        a ``[N, K]``, b ``[M, K]`` -> ``[N, M]`` int64.

    Example:
        >>> hamming_distances(torch.tensor([[True, False]]), torch.tensor([[False, False]])).tolist()
        [[1]]
    """
    b = a if b is None else b
    pa = a.float() * 2 - 1
    pb = b.float() * 2 - 1
    return ((a.shape[1] - pa @ pb.T) / 2).round().to(torch.int64)


def content_hashes(images: Tensor) -> list[str]:
    """A hex digest per image of its uint8 pixels (exact duplicates share one).

    Float images are quantised to uint8 first, so values that encode to the same PNG match.

    Example:
        >>> x = torch.zeros(2, 1, 4, 4)
        >>> h = content_hashes(x); h[0] == h[1]
        True
    """
    if images.is_floating_point():
        images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    arr = images.detach().cpu().contiguous().numpy()
    return [hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).hexdigest() for a in arr]


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def duplicate_clusters(
    hashes: Tensor,
    features: Tensor,
    *,
    feature_radius: float,
    max_hamming: int = 6,
    exact: list[str] | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> list[list[int]]:
    """Groups of near-duplicate samples within one set.

    Two samples are duplicates when their contents are byte-identical (``exact`` digests),
    or when their features lie within ``feature_radius`` *and* their perceptual hashes
    differ in at most ``max_hamming`` bits. Groups are the connected components of that
    relation; only groups of two or more are returned, largest first.

    Args:
        hashes: ``[N, 64]`` bool perceptual hashes.
        features: ``[N, D]`` features.
        feature_radius: Euclidean feature distance below which a pair can be a duplicate.
        max_hamming: largest pHash Hamming distance for a near duplicate.
        exact: optional per-sample content digests (``content_hashes``).

    Example:
        >>> f = torch.tensor([[0.0], [0.0], [5.0]]); h = torch.zeros(3, 64, dtype=torch.bool)
        >>> duplicate_clusters(h, f, feature_radius=0.1)
        [[0, 1]]
    """
    n = features.shape[0]
    if hashes.shape[0] != n:
        raise ValueError(f"hashes has {hashes.shape[0]} rows, features has {n}")
    uf = _UnionFind(n)
    if exact is not None:
        first: dict[str, int] = {}
        for pos, h in enumerate(exact):
            if h in first:
                uf.union(first[h], pos)
            else:
                first[h] = pos
    if n > 1:
        for s, d2 in iter_sq_distance_chunks(features, chunk=chunk):
            ri, rj = (d2 < feature_radius * feature_radius).nonzero(as_tuple=True)
            ri = ri + s
            keep = ri < rj
            ri, rj = ri[keep], rj[keep]
            if ri.numel() == 0:
                continue
            ok = (hashes[ri] != hashes[rj]).sum(1) <= max_hamming
            for a, b in zip(ri[ok].tolist(), rj[ok].tolist(), strict=True):
                uf.union(a, b)
    groups: dict[int, list[int]] = {}
    for k in range(n):
        groups.setdefault(uf.find(k), []).append(k)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def duplicate_fraction(clusters: list[list[int]], n: int) -> float:
    """Share of the ``n`` samples that are redundant copies (every member of a group but one).

    Example:
        >>> duplicate_fraction([[0, 1, 2]], 10)
        0.2
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    return sum(len(g) - 1 for g in clusters) / n
