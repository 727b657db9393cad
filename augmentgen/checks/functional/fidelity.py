"""Fidelity math on features: Frechet distance, kernel distance (KID), precision/recall/density/coverage.

References: FID, Heusel et al. 2017 (https://arxiv.org/abs/1706.08500); KID, Binkowski et al.
2018 (https://arxiv.org/abs/1801.01401); PRDC, Naeem et al. 2020 (https://arxiv.org/abs/2002.09797).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from augmentgen.checks.functional.distances import DEFAULT_CHUNK, _check_2d
from augmentgen.core.rng import RNG


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and unbiased covariance of ``features`` in float64.

    Shape:
        features ``[N, D]`` -> mean ``[D]``, covariance ``[D, D]``.

    Example:
        >>> mu, cov = gaussian_stats(torch.tensor([[0.0], [2.0]]))
        >>> float(mu), float(cov)
        (1.0, 2.0)
    """
    mu, a = scaled_centred(features)
    return mu, a.T @ a


def _sqrt_psd(m: Tensor) -> Tensor:
    w, v = torch.linalg.eigh((m + m.T) / 2)
    out: Tensor = (v * w.clamp_min(0).sqrt()) @ v.T
    return out


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Squared Frechet distance between two Gaussians.

    ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)``; the trace of the
    matrix square root is taken through a symmetric eigendecomposition (stable for singular
    covariances, e.g. fewer samples than dimensions).

    Shape:
        mu ``[D]``, sigma ``[D, D]``.

    Example:
        >>> e = torch.eye(2, dtype=torch.float64)
        >>> frechet_distance(torch.zeros(2), e, torch.ones(2), e)
        2.0
    """
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    s1, s2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    if s1.shape != s2.shape or s1.shape[0] != mu1.shape[0]:
        raise ValueError(
            f"shape mismatch: mu1 {tuple(mu1.shape)}, sigma1 {tuple(s1.shape)}, sigma2 {tuple(s2.shape)}"
        )
    r1 = _sqrt_psd(s1)
    m = r1 @ s2 @ r1
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    d = (mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * tr_sqrt
    return float(d)


def scaled_centred(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and the centred rows over ``sqrt(N - 1)`` in float64: ``a`` with ``a.T @ a`` the covariance.

    The Gaussian of a feature set in ``N x D`` numbers instead of ``D x D``: what the Frechet
    distance needs when the set has fewer rows than dimensions (pixel features).

    Shape:
        features ``[N, D]`` -> mean ``[D]``, a ``[N, D]``.

    Example:
        >>> mu, a = scaled_centred(torch.tensor([[0.0], [2.0]]))
        >>> float(mu), float((a.T @ a)[0, 0])
        (1.0, 2.0)
    """
    _check_2d(features, "features")
    if features.shape[0] < 2:
        raise ValueError(f"Gaussian statistics need at least 2 rows, got {features.shape[0]}")
    f = features.to(torch.float64)
    mu = f.mean(0)
    return mu, (f - mu) / math.sqrt(f.shape[0] - 1)


def frechet_distance_low_rank(mu1: Tensor, a: Tensor, mu2: Tensor, b: Tensor) -> float:
    """``frechet_distance`` with the covariances given as factors: ``sigma1 = a.T a``, ``sigma2 = b.T b``.

    The nonzero eigenvalues of ``sigma1 sigma2`` are those of ``C C.T`` with ``C = a b.T``
    (``[N, M]``), so ``tr((sigma1^1/2 sigma2 sigma1^1/2)^1/2)`` is the sum of ``C``'s singular
    values: exact, and no ``D x D`` matrix is formed (3072-d pixel features of 300 images:
    milliseconds instead of two ``3072 x 3072`` eigendecompositions).

    Shape:
        mu ``[D]``, a ``[N, D]``, b ``[M, D]`` (``scaled_centred``'s output).

    Example:
        >>> mu, a = scaled_centred(torch.tensor([[0.0], [2.0]]))
        >>> frechet_distance_low_rank(mu, a, mu + 1, a)
        1.0
    """
    mu1, mu2, a, b = (t.to(torch.float64) for t in (mu1, mu2, a, b))
    if a.ndim != 2 or b.ndim != 2 or not (a.shape[1] == b.shape[1] == mu1.shape[0] == mu2.shape[0]):
        raise ValueError(
            f"shape mismatch: mu1 {tuple(mu1.shape)}, a {tuple(a.shape)}, mu2 {tuple(mu2.shape)}, b {tuple(b.shape)}"
        )
    tr_sqrt = torch.linalg.svdvals(a @ b.T).sum()
    d = (mu1 - mu2).square().sum() + a.square().sum() + b.square().sum() - 2 * tr_sqrt
    return float(d)


def low_rank_pays(n: int, m: int, d: int) -> bool:
    """Whether the Frechet distance of ``n`` and ``m`` rows in ``d`` dimensions is cheaper through factors.

    Both sets have fewer rows than dimensions (each covariance is singular, and the ``N x M``
    route costs less than two ``D x D`` eigendecompositions).

    Example:
        >>> low_rank_pays(48, 240, 3072), low_rank_pays(2000, 10000, 1280)
        (True, False)
    """
    return max(n, m) < d


def fid(real: Tensor, fake: Tensor) -> float:
    """Frechet distance between the Gaussians fitted to two feature sets.

    Name the figure after its extractor ("FID (EffNet-Lite0)"): values from different
    extractors are not comparable.

    Shape:
        real ``[N, D]``, fake ``[M, D]``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> fid(torch.randn(500, 4, generator=g), torch.randn(500, 4, generator=g)) < 0.1
        True
    """
    _check_2d(real, "real")
    _check_2d(fake, "fake")
    if low_rank_pays(real.shape[0], fake.shape[0], real.shape[1]):
        return frechet_distance_low_rank(*scaled_centred(real), *scaled_centred(fake))
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


def mmd2_poly_unbiased(
    x: Tensor, y: Tensor, *, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> float:
    """Unbiased squared MMD with the polynomial kernel ``(gamma x.y + coef)^degree`` (KID's estimator).

    ``gamma`` defaults to ``1 / D``. Sets may differ in size (the cross term is then an
    average over ``N * M`` pairs).

    Shape:
        x ``[N, D]``, y ``[M, D]``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(2, 400, 3, generator=g, dtype=torch.float64)
        >>> abs(mmd2_poly_unbiased(x, y)) < 0.05 < mmd2_poly_unbiased(x, y + 1)
        True
    """
    _check_2d(x, "x")
    _check_2d(y, "y")
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"mmd2_poly_unbiased needs >= 2 rows per set, got {n} and {m}")
    g = 1.0 / x.shape[1] if gamma is None else gamma
    kxx = (x @ x.T * g + coef) ** degree
    kyy = (y @ y.T * g + coef) ** degree
    kxy = (x @ y.T * g + coef) ** degree
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.sum() / (n * m))


def _subset(n: int, size: int, rng: RNG, device: torch.device) -> Tensor:
    if isinstance(rng, torch.Generator):
        return torch.randperm(n, generator=rng, device=rng.device)[:size].to(device)
    return torch.from_numpy(rng.permutation(n)[:size]).to(device)


def kid(
    real: Tensor,
    fake: Tensor,
    *,
    rng: RNG,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
) -> tuple[float, float]:
    """Kernel Inception Distance: mean and (population) std of the unbiased MMD^2 over random subsets.

    Each subset draws ``subset_size`` rows without replacement from each set (clamped to
    the smaller set). Same estimator as torchmetrics' ``KernelInceptionDistance``.

    Args:
        real: ``[N, D]`` features of real images.
        fake: ``[M, D]`` features of generated images.
        rng: draws the subsets.
        subsets: number of subsets averaged.
        subset_size: rows per subset and set.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g)
        >>> mean, std = kid(a, b + 1, rng=np.random.default_rng(0), subsets=5, subset_size=100)
        >>> mean > 0.1
        True
    """
    _check_2d(real, "real")
    _check_2d(fake, "fake")
    if subsets < 1:
        raise ValueError(f"kid subsets must be >= 1, got {subsets}")
    size = min(subset_size, real.shape[0], fake.shape[0])
    if size < 2:
        raise ValueError(f"kid needs >= 2 rows per set, got {real.shape[0]} real and {fake.shape[0]} fake")
    vals = []
    for _ in range(subsets):
        r = real[_subset(real.shape[0], size, rng, real.device)]
        f = fake[_subset(fake.shape[0], size, rng, fake.device)]
        vals.append(mmd2_poly_unbiased(r, f, degree=degree, gamma=gamma, coef=coef))
    arr = np.asarray(vals, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


def _indicators(n: int, size: int, subsets: list[Tensor], device: torch.device) -> Tensor:
    m = torch.zeros(n, len(subsets), dtype=torch.float32, device=device)
    for j, idx in enumerate(subsets):
        m[idx, j] = 1.0
    return m


def _topk_sq(d2: Tensor, k: int) -> Tensor:
    return d2.topk(k, dim=1, largest=False, sorted=True).values[:, -1]


def fidelity_pass(
    real: Tensor,
    fake: Tensor,
    *,
    k: int = 5,
    rng: RNG | None = None,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    chunk: int = DEFAULT_CHUNK,
) -> dict[str, float]:
    """Precision, recall, density, coverage and KID in one pass over the three Gram matrices.

    PRDC works on squared distances (same comparisons, no square roots); KID sums each
    subset's kernel values with indicator matmuls on the same Gram chunks, so it costs a
    ``[chunk, N] x [N, subsets]`` product per chunk instead of ``subsets`` extra Gram
    matrices. The subsets are drawn exactly as ``kid`` draws them (same ``rng`` -> same
    value). Kernel values are shifted by a constant before summing (the unbiased estimator
    is invariant to it), which keeps float32 sums accurate. ``rng=None`` skips KID.

    Shape:
        real ``[N, D]``, fake ``[M, D]``.

    Returns:
        ``{"precision", "recall", "density", "coverage"}`` plus ``"kid"`` and ``"kid_std"``
        when ``rng`` is given.

    Example:
        >>> x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
        >>> fidelity_pass(x, x.clone(), k=3)["precision"]
        1.0
    """
    _check_2d(real, "real")
    _check_2d(fake, "fake")
    nr, nf = real.shape[0], fake.shape[0]
    for name, n in (("real", nr), ("fake", nf)):
        if not 1 <= k < n:
            raise ValueError(f"prdc k must be in [1, {name} rows - 1] = [1, {n - 1}], got {k}")
    dev, dt = real.device, real.dtype
    c = torch.cat([real, fake]).mean(0)
    xr, xf = real - c, fake - c
    sq_r, sq_f = (xr * xr).sum(1), (xf * xf).sum(1)
    do_kid = rng is not None
    if do_kid:
        if subsets < 1:
            raise ValueError(f"kid subsets must be >= 1, got {subsets}")
        size = min(subset_size, nr, nf)
        if size < 2:
            raise ValueError(f"kid needs >= 2 rows per set, got {nr} real and {nf} fake")
        draws_r, draws_f = [], []
        for _ in range(subsets):
            draws_r.append(_subset(nr, size, rng, dev))  # type: ignore[arg-type]
            draws_f.append(_subset(nf, size, rng, dev))  # type: ignore[arg-type]
        m_r, m_f = _indicators(nr, size, draws_r, dev).to(dt), _indicators(nf, size, draws_f, dev).to(dt)
        gk = 1.0 / real.shape[1] if gamma is None else gamma
        cr, cf, cc = real @ c, fake @ c, c @ c
        shift = float((gk * (real.mean(0) @ fake.mean(0)) + coef) ** degree)
        s_rr = torch.zeros(subsets, dtype=torch.float64, device=dev)
        s_ff, s_rf = torch.zeros_like(s_rr), torch.zeros_like(s_rr)

    def sq_dists(xa: Tensor, sa: Tensor, xb: Tensor, sb: Tensor) -> Tensor:
        # |a|^2 + |b|^2 - 2 a.b with the b-term fused into the BLAS call
        return torch.addmm(sb[None, :], xa, xb.T, alpha=-2.0).add_(sa[:, None]).clamp_min_(0)

    def kernel_sums(
        d2: Tensor, ua: Tensor, vb: Tensor, ma: Tensor, mb: Tensor, diag_start: int | None
    ) -> Tensor:
        # (g * a.b + coef)^degree - shift, with a.b recovered from the centred squared distance:
        # a.b = (|a-c|^2 + |b-c|^2 - d2) / 2 + a.c + b.c - c.c, split into per-row/per-column terms
        kk = d2.mul(-0.5 * gk).add_(ua[:, None]).add_(vb[None, :]).pow_(degree).sub_(shift)
        if diag_start is not None:
            rows = torch.arange(kk.shape[0], device=dev)
            kk[rows, rows + diag_start] = 0.0  # the unbiased estimator leaves out i == j
        return ((kk @ mb) * ma).sum(0, dtype=torch.float64)

    if do_kid:
        u_r = gk * (sq_r / 2 + cr - cc) + coef
        v_r = gk * (sq_r / 2 + cr)
        u_f = gk * (sq_f / 2 + cf - cc) + coef
        v_f = gk * (sq_f / 2 + cf)

    # pass 1: fake x fake -> fake radii, KID fake sums
    r2_fake = torch.empty(nf, dtype=dt, device=dev)
    for s in range(0, nf, chunk):
        e = min(s + chunk, nf)
        d2 = sq_dists(xf[s:e], sq_f[s:e], xf, sq_f)
        if do_kid:
            s_ff += kernel_sums(d2, u_f[s:e], v_f, m_f[s:e], m_f, s)
        rows = torch.arange(e - s, device=dev)
        d2[rows, rows + s] = float("inf")
        r2_fake[s:e] = _topk_sq(d2, k)
    # pass 2: real rows against real (radii, KID) and against fake (PRDC, KID)
    inside = torch.zeros(nf, dtype=torch.int64, device=dev)
    recalled = torch.zeros(nr, dtype=torch.bool, device=dev)
    covered = torch.zeros(nr, dtype=torch.bool, device=dev)
    for s in range(0, nr, chunk):
        e = min(s + chunk, nr)
        d2 = sq_dists(xr[s:e], sq_r[s:e], xr, sq_r)
        if do_kid:
            s_rr += kernel_sums(d2, u_r[s:e], v_r, m_r[s:e], m_r, s)
        rows = torch.arange(e - s, device=dev)
        d2[rows, rows + s] = float("inf")
        r2 = _topk_sq(d2, k)[:, None]
        d2 = sq_dists(xr[s:e], sq_r[s:e], xf, sq_f)
        inside += (d2 < r2).sum(0)  # fake j inside real i's ball
        recalled[s:e] = (d2 < r2_fake[None, :]).any(1)
        covered[s:e] = d2.min(1).values < r2[:, 0]
        if do_kid:
            s_rf += kernel_sums(d2, u_r[s:e], v_f, m_r[s:e], m_f, None)
    out = {
        "precision": float((inside > 0).double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(inside.double().mean() / k),
        "coverage": float(covered.double().mean()),
    }
    if do_kid:
        m = float(size)
        mmd = s_rr / (m * (m - 1)) + s_ff / (m * (m - 1)) - 2 * s_rf / (m * m)
        out["kid"] = float(mmd.mean())
        out["kid_std"] = float(mmd.std(unbiased=False))
    return out


def prdc(real: Tensor, fake: Tensor, *, k: int = 5, chunk: int = DEFAULT_CHUNK) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` with k-NN balls.

    Precision: share of fakes inside some real k-NN ball. Recall: share of reals inside
    some fake k-NN ball. Density: mean number of real balls holding a fake, over k.
    Coverage: share of reals whose ball holds a fake. Matches the ``prdc`` package.

    Shape:
        real ``[N, D]``, fake ``[M, D]``, N and M > k.

    Example:
        >>> x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
        >>> prdc(x, x.clone(), k=3)["coverage"]
        1.0
    """
    return fidelity_pass(real, fake, k=k, rng=None, chunk=chunk)
