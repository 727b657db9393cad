"""The fitted class-conditional latent mixture: k-means, moments, sampling."""

from __future__ import annotations

import pytest
import torch

from augmentgen.generators.latent_prior import fit_class_mixture, kmeans, sample_class_mixture


def test_kmeans_separates_blobs_and_is_seeded() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(50, 2, generator=g) * 0.1, torch.randn(50, 2, generator=g) * 0.1 + 5.0])
    a = kmeans(x, 2, torch.Generator().manual_seed(1))
    assert len(set(a[:50].tolist())) == 1 and len(set(a[50:].tolist())) == 1 and a[0] != a[50]
    assert torch.equal(a, kmeans(x, 2, torch.Generator().manual_seed(1)))


def test_mixture_recovers_two_modes_per_class() -> None:
    g = torch.Generator().manual_seed(0)
    # class 0: modes at -3 and +3 in dim 0; class 1: one mode at (0, 10)
    mu0 = torch.cat([torch.randn(200, 2, generator=g) * 0.2 - torch.tensor([3.0, 0.0]),
                     torch.randn(200, 2, generator=g) * 0.2 + torch.tensor([3.0, 0.0])])  # fmt: skip
    mu1 = torch.randn(100, 2, generator=g) * 0.2 + torch.tensor([0.0, 10.0])
    mu = torch.cat([mu0, mu1])
    var = torch.full_like(mu, 0.01)
    labels = torch.tensor([0] * 400 + [1] * 100)
    w, m, t = fit_class_mixture(mu, var, labels, 3, 2, torch.Generator().manual_seed(0))
    assert w.shape == (3, 2) and m.shape == (3, 2, 2) and t.shape == (3, 2, 2, 2)
    assert sorted(m[0, :, 0].tolist()) == [pytest.approx(-3.0, abs=0.1), pytest.approx(3.0, abs=0.1)]
    assert torch.allclose(w[0], torch.tensor([0.5, 0.5], dtype=w.dtype))
    assert torch.equal(t[2], torch.eye(2, dtype=t.dtype).repeat(2, 1, 1))  # class 2 has no data: N(0, I)
    n = 2000
    lab = torch.zeros(n, dtype=torch.int64)
    z = sample_class_mixture(w, m, t, lab, torch.randn(n, 2, generator=g), torch.rand(n, generator=g))
    near = ((z[:, 0].abs() - 3.0).abs() < 1.0).float().mean()
    assert float(near) > 0.99  # samples sit on the two modes, not between them
    assert 0.4 < float((z[:, 0] > 0).float().mean()) < 0.6


@pytest.mark.parametrize("per_class", [1, 3, 10])
def test_fewer_points_than_components_gives_each_point_its_posterior(per_class: int) -> None:
    """A 10-per-class subset with K = 20: every cluster is one point, a KDE kernel; weights stay finite (was 0/0 = NaN)."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(2 * per_class, 3, generator=g) * 4.0
    var = torch.rand(2 * per_class, 3, generator=g) * 0.5 + 0.01
    labels = torch.tensor([0] * per_class + [1] * per_class)
    w, m, t = fit_class_mixture(mu, var, labels, 2, 20, torch.Generator().manual_seed(0))
    assert torch.isfinite(w).all() and torch.isfinite(m).all() and torch.isfinite(t).all()
    assert torch.allclose(w.sum(1), torch.ones(2, dtype=w.dtype))
    for c in range(2):
        used = (w[c] > 0).nonzero()[:, 0]
        assert len(used) == per_class and torch.allclose(
            w[c, used], torch.full((per_class,), 1.0 / per_class, dtype=w.dtype)
        )
        # each used component is a kernel on one point: Silverman's bandwidth times the class
        # covariance, plus the point's posterior variance
        rows = mu[labels == c].double()
        h2 = (4.0 / (per_class * 5)) ** (2.0 / 7) if per_class > 1 else 0.0
        class_cov = torch.cov(rows.T) if per_class > 1 else torch.zeros(3, 3, dtype=torch.float64)
        got, want_means = m[c, used], rows
        assert torch.allclose(got[got[:, 0].argsort()], want_means[want_means[:, 0].argsort()])
        for j in used:
            i = int((rows - m[c, j]).abs().sum(1).argmin())
            cov = t[c, j] @ t[c, j].T
            want = (
                h2 * class_cov
                + torch.diag(var[labels == c][i].double())
                + 1e-6 * torch.eye(3, dtype=torch.float64)
            )
            assert torch.allclose(cov, want, atol=1e-9)
