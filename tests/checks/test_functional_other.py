"""Memorization ratios, label metrics, reconstruction quality, stability summaries, distances."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import structural_similarity
from torchmetrics.image.inception import InceptionScore

from augmentgen.checks.functional.distances import (
    kth_neighbour_distances,
    nearest_neighbours,
    pairs_within,
    pairwise_distances,
)
from augmentgen.checks.functional.labels import confusion_matrix, inception_score, label_agreement
from augmentgen.checks.functional.memorization import memorization_scores
from augmentgen.checks.functional.reconstruction import psnr, ssim
from augmentgen.checks.functional.stability import drift, metric_spread, oscillation, summarize_health_log

# ---- distances -----------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 40), m=st.integers(1, 30), d=st.integers(1, 9), seed=st.integers(0, 999))
def test_pairwise_distances_match_cdist(n: int, m: int, d: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = (
        torch.randn(n, d, generator=g, dtype=torch.float64),
        torch.randn(m, d, generator=g, dtype=torch.float64),
    )
    assert torch.allclose(pairwise_distances(x, y), torch.cdist(x, y), atol=1e-9)
    dx = pairwise_distances(x)
    assert torch.all(dx.diagonal() == 0) and torch.allclose(dx, dx.T)


def test_knn_helpers_against_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(57, 4, generator=g, dtype=torch.float64)
    ref = torch.cdist(x, x).fill_diagonal_(float("inf"))
    assert torch.allclose(kth_neighbour_distances(x, 3, chunk=10), ref.sort(1).values[:, 2], atol=1e-9)
    d, i = nearest_neighbours(x, k=2, chunk=7)
    assert torch.equal(i, ref.topk(2, largest=False).indices)
    q = torch.randn(9, 4, generator=g, dtype=torch.float64)
    d, i = nearest_neighbours(q, x)
    assert torch.allclose(d[:, 0], torch.cdist(q, x).min(1).values, atol=1e-9)
    close = pairs_within(torch.tensor([[0.0], [0.05], [2.0], [2.01]]), 0.1, chunk=3)
    assert close.tolist() == [[0, 1], [2, 3]]


# ---- memorization --------------------------------------------------------------------------------


def test_memorization_flags_copies_not_fresh_samples() -> None:
    g = torch.Generator().manual_seed(1)
    train = torch.randn(500, 6, generator=g, dtype=torch.float64)
    fresh = torch.randn(100, 6, generator=g, dtype=torch.float64)
    copies = train[:20] + 1e-4 * torch.randn(20, 6, generator=g, dtype=torch.float64)
    s = memorization_scores(torch.cat([copies, fresh]), train)
    assert bool(s.near_copies(1 / 3)[:20].all())
    assert s.near_copy_fraction(1 / 3) <= 0.2 + 0.03  # copies plus at most a few fresh ones
    assert set(s.worst(20).tolist()) == set(range(20))
    assert torch.equal(s.neighbour[:20], torch.arange(20))


def test_memorization_floor_handles_duplicate_training_points() -> None:
    train = torch.tensor([[0.0], [0.0], [1.0], [2.0], [3.0]])
    s = memorization_scores(torch.tensor([[0.0], [0.5]]), train, floor=0.25)
    assert float(s.ratio[0]) == 0.0 and torch.isfinite(s.ratio).all()


# ---- labels --------------------------------------------------------------------------------------


def test_confusion_and_agreement() -> None:
    pred = torch.tensor([0, 1, 2, 2, 1, 0])
    target = torch.tensor([0, 1, 2, 1, 1, 2])
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[1, 0, 0], [0, 2, 1], [1, 0, 1]]
    overall, per = label_agreement(pred, target, 3)
    assert overall == pytest.approx(4 / 6)
    assert per == pytest.approx({0: 1.0, 1: 2 / 3, 2: 0.5})
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), 3)


@pytest.mark.parametrize("splits", [1, 4])
def test_inception_score_matches_torchmetrics(splits: int) -> None:
    logits = torch.randn(400, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3
    if splits == 1:
        tm = InceptionScore(feature=torch.nn.Identity(), splits=1)
        tm.update(logits)
        ref = float(tm.compute()[0])  # one split: torchmetrics' random permutation cannot matter
        assert inception_score(logits, splits=1)[0] == pytest.approx(ref, rel=1e-6)
    else:
        # several splits: torchmetrics permutes with the global RNG first, so apply its per-split
        # formula (inception.py, compute) to the same unpermuted order
        p, logp = logits.softmax(1), logits.log_softmax(1)
        vals = [
            float((pp * (lp - pp.mean(0, keepdim=True).log())).sum(1).mean().exp())
            for pp, lp in zip(p.chunk(splits), logp.chunk(splits), strict=True)
        ]
        mean, std = inception_score(logits, splits=splits)
        assert mean == pytest.approx(np.mean(vals), rel=1e-9)
        assert std == pytest.approx(np.std(vals, ddof=1), rel=1e-9)


def test_inception_score_bounds() -> None:
    uniform = torch.zeros(50, 7)
    assert inception_score(uniform, splits=1)[0] == pytest.approx(1.0)
    confident_balanced = torch.eye(7).repeat(5, 1) * 50
    assert inception_score(confident_balanced, splits=1)[0] == pytest.approx(7.0, rel=1e-4)


# ---- reconstruction ------------------------------------------------------------------------------


def test_psnr_and_ssim_match_skimage() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 1, 28, 28, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    mse = ((x - y) ** 2).mean((1, 2, 3))
    assert torch.allclose(psnr(x, y), 10 * torch.log10(1 / mse))
    ours = ssim(x, y)
    for i in range(3):
        ref = structural_similarity(
            x[i, 0].numpy(),
            y[i, 0].numpy(),
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        # skimage averages over the border-cropped image, we over the valid region: same window, same crop
        assert float(ours[i]) == pytest.approx(ref, abs=1e-6)
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64))


# ---- stability -----------------------------------------------------------------------------------


def test_metric_spread() -> None:
    out = metric_spread([{"fid": 10.0, "recall": 0.5}, {"fid": 14.0}, {"fid": float("nan"), "recall": 0.7}])
    assert out["fid"]["mean"] == 12.0 and out["fid"]["std"] == 2.0 and out["fid"]["n"] == 2
    assert out["recall"]["min"] == 0.5 and out["recall"]["max"] == 0.7
    assert out["fid"]["cv"] == pytest.approx(2 / 12)


def test_oscillation_and_drift() -> None:
    t = np.arange(200)
    assert oscillation(np.full(200, 2.0)) == 0.0
    assert oscillation(1 + 0.5 * np.sign(np.sin(t))) > oscillation(1 + 0.05 * np.sign(np.sin(t))) > 0
    assert drift(t * 10, 0.5 + t * 1e-4) == pytest.approx(0.01)


def test_health_log_summary_reads_trainer_records() -> None:
    recs = []
    for s in range(1, 41):
        recs.append(
            {
                "step": s * 50,
                "loss_d": 1.0 + 0.3 * (-1) ** s,
                "loss_g": 2.0,
                "d_real_acc": 0.5 + s * 0.01,
                "r_t": 0.9 if s <= 3 else 0.5 if s < 30 else 0.7,  # high early: a poor G, not overfitting
                "collapse/alarm": 1.0 if s == 35 else 0.0,
                "lr/g": 2e-4,
            }
        )
    recs.append({"step": 2050, "loss_d": None, "alarm": "diverged"})
    out = summarize_health_log(recs)
    assert out["steps"] == 41
    assert out["alarms"] == {"r_t > 0.6": 11, "collapse/alarm": 1, "diverged": 1}
    assert out["oscillation"]["loss_d"] > 0.1 and out["oscillation"]["loss_g"] == 0.0
    assert out["d_acc_drift"]["d_real_acc"] == pytest.approx(0.2, rel=1e-6)  # +0.01 per 50 steps
    assert out["r_t"]["max"] == 0.9
    assert summarize_health_log([])["steps"] == 0
