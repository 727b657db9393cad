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
