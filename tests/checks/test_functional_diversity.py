"""Vendi against the vendi-score package, within-class spread, k-means and mode coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist
from vendi_score import vendi

from augmentgen.checks.functional.diversity import (
    class_spread_ratio,
    kmeans,
    mean_pairwise_distance,
    mode_coverage,
    vendi_score,
)


def _x(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).abs()


@pytest.mark.parametrize(("n", "d"), [(300, 40), (50, 200)])  # primal and dual side
def test_vendi_matches_package_q1(n: int, d: int) -> None:
    x = _x(n, d, 0)
    ref = vendi.score_X(x.numpy(), normalize=True)
    assert vendi_score(x) == pytest.approx(float(ref), rel=1e-6)


@pytest.mark.parametrize("q", [0.5, 2.0, math.inf])
def test_vendi_matches_package_other_orders(q: float) -> None:
    x = _x(200, 30, 1)
    xn = x.numpy() / np.linalg.norm(x.numpy(), axis=1, keepdims=True)
    ref = vendi.score_K(xn @ xn.T, q="inf" if math.isinf(q) else q)
    assert vendi_score(x, q=q) == pytest.approx(float(ref), rel=1e-6)


def test_vendi_matches_package_unnormalized_dual() -> None:
    x = _x(400, 16, 2)
    ref = vendi.score_dual(x.numpy(), normalize=False)
    assert vendi_score(x, normalize=False) == pytest.approx(float(ref), rel=1e-6)


def test_vendi_counts_distinct_items() -> None:
    base = torch.eye(5, dtype=torch.float64)
    assert vendi_score(base) == pytest.approx(5.0)
    assert vendi_score(base.repeat(4, 1)) == pytest.approx(5.0)  # copies add nothing
    assert vendi_score(base[:1].repeat(10, 1)) == pytest.approx(1.0)


def test_mean_pairwise_distance_matches_scipy() -> None:
    x = _x(123, 7, 3)
    assert mean_pairwise_distance(x, chunk=50) == pytest.approx(float(pdist(x.numpy()).mean()), rel=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), scale=st.floats(0.1, 3.0))
def test_class_spread_ratio_scales_linearly(seed: int, scale: float) -> None:
    x = _x(60, 5, seed)
    y = torch.arange(60) % 3
    ratios = class_spread_ratio(x * scale, y, x, y)
    assert set(ratios) == {0, 1, 2}
    for v in ratios.values():
        assert v == pytest.approx(scale, rel=1e-6)


def test_class_spread_skips_small_classes() -> None:
    x = _x(10, 3, 4)
    y = torch.tensor([0] * 9 + [1])
    assert set(class_spread_ratio(x, y, x, y)) == {0}


def test_kmeans_finds_separated_clusters_and_is_deterministic() -> None:
    g = torch.Generator().manual_seed(5)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.3 * torch.randn(40, 2, generator=g) for c in centers])
    c1, a1 = kmeans(x, 3, rng=np.random.default_rng(0))
    c2, a2 = kmeans(x, 3, rng=np.random.default_rng(0))
    assert torch.equal(a1, a2) and torch.equal(c1, c2)
    for block in a1.reshape(3, 40):
        assert len(set(block.tolist())) == 1  # each true cluster gets one label
    assert len(set(a1.tolist())) == 3


def test_mode_coverage_drops_when_modes_are_missing() -> None:
    g = torch.Generator().manual_seed(6)
    centers = torch.arange(8, dtype=torch.float32)[:, None] * torch.tensor([[20.0, 0.0]])
    real = torch.cat([c + torch.randn(30, 2, generator=g) for c in centers])
    fake_all = torch.cat([c + torch.randn(10, 2, generator=g) for c in centers])
    fake_half = torch.cat([c + torch.randn(20, 2, generator=g) for c in centers[:4]])
    full, rc, fc = mode_coverage(real, fake_all, modes=8, rng=np.random.default_rng(0))
    half, _, _ = mode_coverage(real, fake_half, modes=8, rng=np.random.default_rng(0))
    assert full == 1.0
    assert half == pytest.approx(0.5)
    assert int(rc.sum()) == 240 and int(fc.sum()) == 80


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="kmeans k"):
        kmeans(torch.zeros(3, 2), 4, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=">= 2 rows"):
        mean_pairwise_distance(torch.zeros(1, 2))
