"""FID, KID and PRDC against their reference implementations on identical features, plus invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from prdc import compute_prdc
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

from augmentgen.checks.functional.fidelity import (
    fid,
    fidelity_pass,
    frechet_distance,
    frechet_distance_low_rank,
    gaussian_stats,
    kid,
    mmd2_poly_unbiased,
    prdc,
    scaled_centred,
)


class _Identity(nn.Module):
    """Feature 'extractor' for torchmetrics that passes precomputed features through."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """Correlated non-negative features (like CNN activations); one fixed mixing per ``d``, samples by ``seed``."""
    mix = torch.randn(d, d, generator=torch.Generator().manual_seed(1234), dtype=torch.float64) / math.sqrt(d)
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + shift
    ).relu()  # non-negative, like CNN features


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_fid_matches_torchmetrics(shift: float) -> None:
    real, fake = _features(600, 32, 0), _features(500, 32, 1, shift)
    tm = FrechetInceptionDistance(feature=_Identity(32))
    tm.update(real, real=True)
    tm.update(fake, real=False)
    ref = float(tm.compute())
    ours = fid(real, fake)
    assert abs(ours - ref) / ref <= 1e-3


def test_fid_matches_torchmetrics_on_classifier_features(
    tiny_classifier: nn.Module, real_small, heldout_small
) -> None:
    from augmentgen.checks.features import ClassifierFeatures, extract_features

    ext = ClassifierFeatures(tiny_classifier)
    fr = extract_features(ext, real_small.images).double()
    ff = extract_features(ext, heldout_small.images).double()
    tm = FrechetInceptionDistance(feature=_Identity(fr.shape[1]))
    tm.update(fr, real=True)
    tm.update(ff, real=False)
    ref = float(tm.compute())
    assert abs(fid(fr, ff) - ref) / ref <= 1e-3


def test_frechet_distance_golden_values() -> None:
    # 1-D: (mu1-mu2)^2 + s1 + s2 - 2 sqrt(s1 s2) = 4 + 1 + 4 - 4 = 5
    assert frechet_distance(
        torch.tensor([0.0]), torch.tensor([[1.0]]), torch.tensor([2.0]), torch.tensor([[4.0]])
    ) == pytest.approx(5.0)
    # Diagonal covariances: sum over dims of (sqrt(a) - sqrt(b))^2 plus the mean term
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 4.0, 1.0])
    expect = float(((a.sqrt() - b.sqrt()) ** 2).sum()) + 3.0
    got = frechet_distance(torch.zeros(3), torch.diag(a), torch.ones(3), torch.diag(b))
    assert got == pytest.approx(expect, rel=1e-9)


def test_fid_zero_on_identical_sets_and_handles_singular_covariance() -> None:
    x = _features(50, 80, 3)  # fewer samples than dims: singular covariance
    assert abs(fid(x, x.clone())) < 1e-6
    assert fid(x, x + 1.0) == pytest.approx(80.0, rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 40),
    m=st.integers(2, 40),
    d=st.integers(1, 60),
    seed=st.integers(0, 10_000),
    shift=st.floats(0.0, 2.0),
)
def test_low_rank_frechet_equals_the_covariance_route(n: int, m: int, d: int, seed: int, shift: float) -> None:
    """The factor route (singular values of a b^T) is the same number as the D x D eigen route, any shapes."""
    a, b = _features(n, d, seed), _features(m, d, seed + 1, shift)
    full = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    low = frechet_distance_low_rank(*scaled_centred(a), *scaled_centred(b))
    scale = float(gaussian_stats(a)[1].trace() + gaussian_stats(b)[1].trace()) + 1.0
    assert low == pytest.approx(full, abs=1e-7 * scale)
    assert low >= -1e-9 * scale


def test_fid_with_fewer_rows_than_dims_matches_torchmetrics() -> None:
    """3072-d features of 48 real and 240 generated rows (a 32 px RGB image folder's pixel check)."""
    real, fake = _features(48, 3072, 0), _features(240, 3072, 1, 0.2)
    tm = FrechetInceptionDistance(feature=_Identity(3072))
    tm.update(real, real=True)
    tm.update(fake, real=False)
    ref = float(tm.compute())
    assert fid(real, fake) == pytest.approx(ref, rel=1e-6)


def test_low_rank_frechet_golden_and_bad_shapes() -> None:
    # two points each in 3-d: a = [[0,0,0],[2,0,0]] -> var 2 on x; b = [[0,0,0],[0,4,0]] -> var 8 on y
    mu1, a = scaled_centred(torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]))
    mu2, b = scaled_centred(torch.tensor([[0.0, 0.0, 0.0], [0.0, 4.0, 0.0]]))
    # orthogonal covariances: tr sqrt term 0; |mu1 - mu2|^2 = 1 + 4 = 5; traces 2 + 8
    assert frechet_distance_low_rank(mu1, a, mu2, b) == pytest.approx(15.0)
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance_low_rank(mu1, a, mu2[:2], b[:, :2])
    with pytest.raises(ValueError, match="at least 2 rows"):
        scaled_centred(torch.zeros(1, 3))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(0.0, 2.0))
def test_fid_symmetric_and_nonnegative(seed: int, shift: float) -> None:
    a, b = _features(60, 6, seed), _features(70, 6, seed + 1, shift)
    ab, ba = fid(a, b), fid(b, a)
    assert ab >= -1e-9
    assert ab == pytest.approx(ba, rel=1e-6, abs=1e-9)


def test_kid_matches_torchmetrics_whole_set() -> None:
    # subsets=1 with subset_size=N: every permutation gives the same value, so torchmetrics' global RNG is moot
    real, fake = _features(300, 16, 0), _features(300, 16, 1, 0.2)
    tm = KernelInceptionDistance(feature=_Identity(16), subsets=1, subset_size=300)
    tm.update(real, real=True)
    tm.update(fake, real=False)
    ref = float(tm.compute()[0])
    mean, std = kid(real, fake, rng=np.random.default_rng(0), subsets=1, subset_size=300)
    assert abs(mean - ref) / abs(ref) <= 1e-3
    assert std == 0.0


def test_kid_subsets_match_torchmetrics_poly_mmd() -> None:
    real, fake = _features(400, 16, 4), _features(350, 16, 5, 0.1)
    mean, std = kid(real, fake, rng=np.random.default_rng(7), subsets=8, subset_size=200)
    rng = np.random.default_rng(7)
    vals = []
    for _ in range(8):  # the same draws, in the same order, scored by torchmetrics' own kernel code
        r = real[torch.from_numpy(rng.permutation(400)[:200])]
        f = fake[torch.from_numpy(rng.permutation(350)[:200])]
        vals.append(float(poly_mmd(r, f)))
    assert abs(mean - np.mean(vals)) / abs(np.mean(vals)) <= 1e-3
    assert std == pytest.approx(float(np.std(vals)), rel=1e-3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_pass_equals_kid_and_prdc(dtype: torch.dtype) -> None:
    real, fake = _features(500, 24, 8), _features(450, 24, 9, 0.15)
    fused = fidelity_pass(
        real.to(dtype), fake.to(dtype), k=5, rng=np.random.default_rng(1), subsets=10, subset_size=300
    )
    mean, std = kid(real, fake, rng=np.random.default_rng(1), subsets=10, subset_size=300)
    assert abs(fused["kid"] - mean) / abs(mean) <= 1e-3
    assert fused["kid_std"] == pytest.approx(std, rel=1e-3)
    sep = prdc(real, fake, k=5)
    for key in ("precision", "recall", "density", "coverage"):
        assert fused[key] == pytest.approx(sep[key], abs=1e-6 if dtype == torch.float64 else 5e-3)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_matches_reference_package(k: int) -> None:
    real, fake = _features(400, 20, 10), _features(300, 20, 11, 0.2)
    ref = compute_prdc(real.numpy(), fake.numpy(), nearest_k=k)
    ours = prdc(real, fake, k=k, chunk=128)  # small chunks: exercise the chunk seams
    for key in ("precision", "recall", "density", "coverage"):
        assert abs(ours[key] - float(ref[key])) <= 1e-6, key


def test_prdc_identical_sets_and_disjoint_sets() -> None:
    x = _features(200, 8, 12)
    same = prdc(x, x.clone(), k=3)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = prdc(x, x + 100.0, k=3)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_mmd_zero_for_same_distribution_positive_for_shift() -> None:
    a, b = _features(800, 8, 13), _features(800, 8, 14)
    assert abs(mmd2_poly_unbiased(a, b)) < 0.02
    assert mmd2_poly_unbiased(a, b + 0.5) > 0.1


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        fid(torch.zeros(5), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="at least 2 rows"):
        gaussian_stats(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="k must be"):
        prdc(torch.zeros(4, 2), torch.zeros(4, 2), k=4)
    with pytest.raises(ValueError, match="subsets"):
        kid(torch.zeros(4, 2), torch.zeros(4, 2), rng=np.random.default_rng(0), subsets=0)
