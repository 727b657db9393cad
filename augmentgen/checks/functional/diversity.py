"""Diversity math on features: Vendi score, within-class spread, mode coverage.

Vendi: Friedman & Dieng 2023 (https://arxiv.org/abs/2210.02410), the exponential of the
entropy of the eigenvalues of the normalised similarity matrix; with a cosine kernel it is
computed from the ``D x D`` covariance (the "dual"), so it costs ``O(N D^2)``, not ``O(N^2)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from augmentgen.checks.functional.distances import DEFAULT_CHUNK, _check_2d, iter_distance_chunks
from augmentgen.core.rng import RNG, child_seed


def _entropy_q(p: Tensor, q: float) -> float:
    p = p[p > 0]
    if q == 1:
        return float(-(p * p.log()).sum())
    if math.isinf(q):
        return float(-p.max().log())
    return float((p**q).sum().log() / (1 - q))


def vendi_score(features: Tensor, *, q: float = 1.0, normalize: bool = True) -> float:
    """Vendi score (effective number of distinct samples) with the cosine-similarity kernel.

    Args:
        features: ``[N, D]``.
        q: order of the Renyi entropy (1 = Shannon, ``math.inf`` allowed).
        normalize: L2-normalise rows first (cosine kernel); False uses the raw dot product.

    Example:
        >>> round(vendi_score(torch.eye(3)), 6)
        3.0
    """
    _check_2d(features, "features")
    x = features if features.is_floating_point() else features.float()
    if normalize:
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    n, d = x.shape
    # Nonzero eigenvalues of X X^T / n equal those of X^T X / n: use the smaller one. The
    # product runs in the input dtype, the eigendecomposition in float64.
    gram = (x.T @ x if d < n else x @ x.T).to(torch.float64) / n
    w = torch.linalg.eigvalsh(gram)
    return float(math.exp(_entropy_q(w, q)))


def mean_pairwise_distance(features: Tensor, *, chunk: int = DEFAULT_CHUNK) -> float:
    """Mean Euclidean distance over all pairs ``i != j``.

    Example:
        >>> mean_pairwise_distance(torch.tensor([[0.0], [1.0], [3.0]]))
        2.0
    """
    _check_2d(features, "features")
    n = features.shape[0]
    if n < 2:
        raise ValueError(f"mean_pairwise_distance needs >= 2 rows, got {n}")
    total = torch.zeros((), dtype=torch.float64, device=features.device)
    for _, d in iter_distance_chunks(features, chunk=chunk):
        total += d.masked_fill(torch.isinf(d), 0).sum(dtype=torch.float64)
    return float(total / (n * (n - 1)))


def class_spread_ratio(
    fake: Tensor, fake_labels: Tensor, real: Tensor, real_labels: Tensor, *, min_count: int = 2
) -> dict[int, float]:
    """Per class: mean pairwise feature distance of the fakes over that of the reals (1 = as varied).

    Classes with fewer than ``min_count`` rows on either side are left out.

    Example:
        >>> x, y = torch.randn(40, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(40, dtype=torch.long)
        >>> round(class_spread_ratio(x * 0.5, y, x, y)[0], 4)
        0.5
    """
    out: dict[int, float] = {}
    for c in sorted(set(real_labels.tolist()) & set(fake_labels.tolist())):
        f, r = fake[fake_labels == c], real[real_labels == c]
        if f.shape[0] < min_count or r.shape[0] < min_count:
            continue
        out[int(c)] = mean_pairwise_distance(f) / max(mean_pairwise_distance(r), 1e-12)
    return out


def _sq_to(x: Tensor, cents: Tensor, sq_x: Tensor | None = None) -> Tensor:
    """``[N, k]`` squared distances (rows of ``x`` should be centred for accuracy)."""
    sq = (x * x).sum(1) if sq_x is None else sq_x
    return torch.addmm((cents * cents).sum(1)[None, :], x, cents.T, alpha=-2.0).add_(sq[:, None])


def kmeans(x: Tensor, k: int, *, rng: RNG, iters: int = 25) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means with k-means++ seeding drawn from ``rng``.

    Shape:
        x ``[N, D]`` -> centroids ``[k, D]``, assignment ``[N]``.

    Example:
        >>> x = torch.cat([torch.zeros(5, 2), torch.ones(5, 2) * 10])
        >>> c, a = kmeans(x, 2, rng=torch.Generator().manual_seed(0))
        >>> len(set(a.tolist()))
        2
    """
    _check_2d(x, "x")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"kmeans k must be in [1, N={n}], got {k}")
    g = torch.Generator().manual_seed(child_seed(rng))
    mean = x.mean(0)
    xc = x - mean
    sq = (xc * xc).sum(1)
    first = int(torch.randint(n, (1,), generator=g))
    idx = [first]
    d2 = _sq_to(xc, xc[first : first + 1], sq)[:, 0].clamp_min_(0)
    for _ in range(1, k):
        w = d2.double().cpu()
        p = w / w.sum() if float(w.sum()) > 0 else torch.full((n,), 1.0 / n, dtype=torch.float64)
        i = int(torch.multinomial(p, 1, generator=g))
        idx.append(i)
        d2 = torch.minimum(d2, _sq_to(xc, xc[i : i + 1], sq)[:, 0].clamp_min_(0))
    c = xc[idx].clone()
    assign = _sq_to(xc, c, sq).argmin(1)
    for _ in range(iters):
        onehot = torch.zeros(k, n, dtype=x.dtype, device=x.device)
        onehot[assign, torch.arange(n, device=x.device)] = 1.0
        cnt = onehot.sum(1)
        new = torch.where(cnt[:, None] > 0, (onehot @ xc) / cnt.clamp_min(1)[:, None], c)
        new_assign = _sq_to(xc, new, sq).argmin(1)
        c = new
        if torch.equal(new_assign, assign):
            break
        assign = new_assign
    return c + mean, assign


def mode_coverage(
    real: Tensor, fake: Tensor, *, modes: int, rng: RNG, min_share: float = 0.25
) -> tuple[float, Tensor, Tensor]:
    """Share of the real data's modes that the fakes populate.

    The reals are clustered into ``modes`` k-means modes; every fake is assigned to its
    nearest mode; a mode counts as covered when its share of fakes is at least ``min_share``
    times its share of reals.

    Returns:
        (covered fraction, real counts ``[modes]``, fake counts ``[modes]``).

    Example:
        >>> r = torch.cat([torch.zeros(20, 2), torch.ones(20, 2) * 10])
        >>> cov, _, _ = mode_coverage(r, torch.zeros(10, 2), modes=2, rng=torch.Generator().manual_seed(0))
        >>> cov
        0.5
    """
    _check_2d(real, "real")
    _check_2d(fake, "fake")
    m = min(modes, real.shape[0])
    cents, assign = kmeans(real, m, rng=rng)
    real_counts = torch.bincount(assign, minlength=m)
    mean = real.mean(0)
    fake_assign = _sq_to(fake - mean, cents - mean).argmin(1)
    fake_counts = torch.bincount(fake_assign, minlength=m)
    real_share = real_counts.double() / real_counts.sum()
    fake_share = fake_counts.double() / max(int(fake_counts.sum()), 1)
    covered = (fake_share >= min_share * real_share) & (real_counts > 0)
    return float(covered.double().sum() / (real_counts > 0).sum()), real_counts, fake_counts
