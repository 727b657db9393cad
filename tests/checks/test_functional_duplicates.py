"""Perceptual hashes, Hamming distances and duplicate clusters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augmentgen.checks.functional.duplicates import (
    content_hashes,
    duplicate_clusters,
    duplicate_fraction,
    hamming_distances,
    perceptual_hash,
)


def test_phash_stable_under_small_noise_and_far_for_other_images(heldout_small) -> None:
    x = torch.from_numpy(heldout_small.images[:50]).permute(0, 3, 1, 2).float() / 255
    g = torch.Generator().manual_seed(0)
    noisy = (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    h, hn = perceptual_hash(x), perceptual_hash(noisy)
    assert h.shape == (50, 64) and h.dtype == torch.bool
    same = (h != hn).sum(1).float()
    other = hamming_distances(h)
    other.fill_diagonal_(64)
    assert float(same.median()) <= 4
    assert float(other.min(1).values.float().median()) > float(same.median())


def test_phash_uint8_and_float_agree_and_flat_images_differ_by_brightness() -> None:
    img = torch.randint(0, 256, (3, 1, 28, 28), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    assert torch.equal(perceptual_hash(img), perceptual_hash(img.float() / 255))
    flat = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    h = perceptual_hash(flat)
    assert int((h[0] != h[1]).sum()) >= 1


def test_phash_rgb_equals_grey_for_grey_content() -> None:
    grey = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    assert torch.equal(perceptual_hash(grey), perceptual_hash(grey.expand(-1, 3, -1, -1)))


def test_hamming_matches_bit_count() -> None:
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.random((20, 64)) < 0.5)
    b = torch.from_numpy(rng.random((15, 64)) < 0.5)
    ref = (a[:, None, :] != b[None, :, :]).sum(-1)
    assert torch.equal(hamming_distances(a, b), ref)


def test_clusters_find_planted_duplicates_only(heldout_small) -> None:
    imgs = torch.from_numpy(heldout_small.images[:200].copy()).permute(0, 3, 1, 2).contiguous()
    imgs[10] = imgs[3]  # exact copy
    imgs[11] = imgs[3]
    g = torch.Generator().manual_seed(3)
    near = (
        (imgs[50].float() + 3 * torch.randn(imgs[50].shape, generator=g))
        .clamp(0, 255)
        .round()
        .to(torch.uint8)
    )
    imgs[60] = near  # near copy of 50
    feats = imgs.flatten(1).float() / 255
    clusters = duplicate_clusters(
        perceptual_hash(imgs), feats, feature_radius=1.3, exact=content_hashes(imgs)
    )
    assert [3, 10, 11] in clusters
    assert [50, 60] in clusters
    assert len(clusters) == 2
    assert duplicate_fraction(clusters, 200) == pytest.approx(3 / 200)


def test_exact_only_when_radius_zero() -> None:
    x = torch.zeros(4, 1, 4, 4)
    x[1] = 0.001  # differs in value: not exact after uint8 rounding? 0.001*255 rounds to 0 -> exact
    x[2] = 0.5
    x[3] = 0.5
    c = duplicate_clusters(perceptual_hash(x), x.flatten(1), feature_radius=0.0, exact=content_hashes(x))
    assert c == [[0, 1], [2, 3]]


def test_errors() -> None:
    with pytest.raises(ValueError, match="rows"):
        duplicate_clusters(torch.zeros(2, 64, dtype=torch.bool), torch.zeros(3, 2), feature_radius=1.0)
    with pytest.raises(ValueError, match="positive"):
        duplicate_fraction([], 0)
