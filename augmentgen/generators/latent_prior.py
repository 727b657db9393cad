"""A class-conditional Gaussian mixture over a VAE's latent space, fitted after training.

Ex-post density estimation (Ghosh et al. 2020, https://arxiv.org/abs/1903.12436): sampling z
from a density fitted to the encoded training set, instead of N(0, I), keeps samples where the
decoder was trained. Per class, k-means splits the posterior means into ``K`` clusters; each
cluster is one Gaussian with the covariance of its posterior means plus their mean posterior
variance, weighted by its share of the class. A cluster of one point (every cluster of a class
with no more points than ``K``, as in a 10-per-class subset) is a kernel of a Gaussian kernel
density estimate instead: centred on the point, with the class's covariance of posterior means
scaled by Silverman's bandwidth, plus the point's posterior variance. Pure functions; the CVAE
holds the tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor


def kmeans(x: Tensor, k: int, g: torch.Generator, iters: int = 25) -> Tensor:
    """Cluster ids ``[N]`` of Lloyd's k-means on ``x`` ``[N, D]``, started from ``k`` rows drawn with ``g``.

    Example:
        >>> x = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
        >>> a = kmeans(x, 2, torch.Generator().manual_seed(0))
        >>> bool(a[0] == a[1]) and bool(a[2] == a[3]) and bool(a[0] != a[2])
        True
    """
    n = x.shape[0]
    k = max(1, min(k, n))
    centers = x[torch.randperm(n, generator=g)[:k].to(x.device)].clone()
    assign = torch.zeros(n, dtype=torch.int64, device=x.device)
    for _ in range(iters):
        assign = torch.cdist(x, centers).argmin(1)
        sums = torch.zeros_like(centers).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        filled = counts > 0
        new = torch.where(filled[:, None], sums / counts.clamp(min=1)[:, None], centers)
        if torch.equal(new, centers):
            break
        centers = new
    return assign


def fit_class_mixture(
    mu: Tensor, var: Tensor, labels: Tensor, num_classes: int, components: int, g: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Fit ``components`` Gaussians per class to posterior means ``mu`` and variances ``var``.

    Shape:
        mu, var ``[N, L]``, labels ``[N]`` -> weights ``[C, K]``, means ``[C, K, L]``, scale_tril ``[C, K, L, L]``.
        A class with no sample keeps N(0, I); one with a single sample gets that sample's posterior.
    """
    d = mu.shape[1]
    k = components
    x_all, v_all = mu.double(), var.double()
    eye = torch.eye(d, dtype=torch.float64, device=mu.device)
    weights = torch.zeros(num_classes, k, dtype=torch.float64, device=mu.device)
    weights[:, 0] = 1.0
    means = torch.zeros(num_classes, k, d, dtype=torch.float64, device=mu.device)
    trils = eye.repeat(num_classes, k, 1, 1)
    for c in range(num_classes):
        sel = labels == c
        if int(sel.sum()) == 0:
            continue
        x, v = x_all[sel], v_all[sel]
        n = x.shape[0]
        # kernel of a one-point cluster: Silverman's rule of thumb, h = (4 / (n (d + 2)))^(1 / (d + 4))
        h = (4.0 / (n * (d + 2))) ** (1.0 / (d + 4))
        kernel = h * h * torch.cov(x.T).reshape(d, d) if n > 1 else torch.zeros_like(eye)
        assign = kmeans(x, k, g)
        weights[c] = 0.0
        for j in range(k):
            xs, vs = x[assign == j], v[assign == j]
            if xs.shape[0] == 0:
                continue  # an empty cluster gets no weight
            spread = torch.cov(xs.T).reshape(d, d) if xs.shape[0] > 1 else kernel
            cov = spread + torch.diag(vs.mean(0)) + 1e-6 * eye
            weights[c, j] = xs.shape[0] / x.shape[0]
            means[c, j] = xs.mean(0)
            trils[c, j] = torch.linalg.cholesky(cov)
        weights[c] /= weights[c].sum()
    return weights, means, trils


def sample_class_mixture(
    weights: Tensor, means: Tensor, trils: Tensor, labels: Tensor, eps: Tensor, u: Tensor
) -> Tensor:
    """Latents of ``labels`` from the fitted mixture, given standard normal ``eps`` and uniform ``u``.

    Shape:
        labels ``[n]``, eps ``[n, L]``, u ``[n]`` in [0, 1) -> ``[n, L]``.
    """
    cum = weights[labels].cumsum(1)  # [n, K]
    comp = (u[:, None].to(cum) >= cum).sum(1).clamp(max=weights.shape[1] - 1)  # [n]
    mean = means[labels, comp]  # [n, L]
    tril = trils[labels, comp]  # [n, L, L]
    return (mean + (tril @ eps.to(tril).unsqueeze(-1)).squeeze(-1)).to(eps.dtype)
