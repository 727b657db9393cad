"""Metrics you can trust, on real Fashion-MNIST: each figure moves the way it must when the data changes.

Default tests use EffNet-Lite0 at 32 px (the real ImageNet weights, cheap on a CPU), raw
pixels, and the tiny reference classifier; the slow test repeats the FID ordering at the
suite's default 64 px on 1000 images per set.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from augmentgen.checks.diversity import DuplicateCheck
from augmentgen.checks.features import EffNetLite0Features, PixelFeatures, extract_features
from augmentgen.checks.functional.fidelity import fid, prdc
from augmentgen.checks.labels import LabelCheck
from augmentgen.checks.memorization import MemorizationCheck
from augmentgen.data import load_digits, subset_per_class


def _noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)


def _digits28(n: int) -> np.ndarray:
    d = load_digits("all").to_batch(np.arange(n)).image  # [n, 1, 8, 8]
    up = F.interpolate(d, size=(28, 28), mode="bilinear", align_corners=False)
    return (up.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _fid_ordering(ext, train: np.ndarray, test: np.ndarray) -> tuple[float, float, float]:
    n = len(test)
    ft = extract_features(ext, train)
    return (
        fid(ft, extract_features(ext, test)),
        fid(ft, extract_features(ext, _noise(n, 0))),
        fid(ft, extract_features(ext, _digits28(n))),
    )


@pytest.fixture(scope="module")
def effnet32() -> EffNetLite0Features:
    return EffNetLite0Features(image_size=32)


def test_fid_train_vs_test_far_below_noise_and_digits(effnet32, real_small, heldout_small) -> None:
    same, noise, digits = _fid_ordering(effnet32, real_small.images, heldout_small.images)
    assert same * 5 < noise
    assert same * 5 < digits


@pytest.mark.slow
def test_fid_ordering_at_suite_resolution(fm_train, fm_test) -> None:
    ext = EffNetLite0Features(image_size=64)
    train = subset_per_class(fm_train, 100, seed=2).images
    test = subset_per_class(fm_test, 100, seed=3).images
    same, noise, digits = _fid_ordering(ext, train, test)
    assert same * 5 < noise and same * 5 < digits


def test_recall_and_coverage_fall_when_classes_are_dropped(effnet32, real_small, fm_test) -> None:
    fr = extract_features(effnet32, real_small.images)
    full = subset_per_class(fm_test, 30, seed=4)
    # same size as the full set, but only classes 0-4
    idx = np.concatenate([np.flatnonzero(fm_test.labels == c)[:60] for c in range(5)])
    half_images = fm_test.images[idx]
    a = prdc(fr, extract_features(effnet32, full.images), k=5)
    b = prdc(fr, extract_features(effnet32, half_images), k=5)
    # measured: recall 0.88 -> 0.74, coverage 0.95 -> 0.66 (recall falls less: the fakes' own
    # k-NN balls grow where classes are missing, a known optimism of k-NN recall)
    assert b["recall"] < a["recall"] - 0.1
    assert b["coverage"] < a["coverage"] - 0.2
    assert b["precision"] > 0.5  # what is there still looks real


def test_memorization_flags_planted_copies_not_heldout(real_small, heldout_small) -> None:
    ext = PixelFeatures()
    train = extract_features(ext, real_small.images)
    planted_idx = np.arange(0, 400, 10)  # 40 training images copied into the generated set
    gen = np.concatenate([heldout_small.images, real_small.images[planted_idx]])
    check = MemorizationCheck(ext, train)
    check.update_features(extract_features(ext, gen))
    r = check.compute()
    s = check.scores
    assert s is not None
    flagged = set(np.flatnonzero(s.near_copies(check.threshold).numpy()).tolist())
    n_held = len(heldout_small)
    planted = set(range(n_held, n_held + len(planted_idx)))
    assert planted <= flagged
    assert len(flagged - planted) <= 0.01 * n_held  # held-out real images are not flagged
    assert torch.equal(s.neighbour[n_held:], torch.from_numpy(planted_idx))
    assert r.value == pytest.approx(len(flagged) / len(gen))
    assert {p["generated"] for p in r.details["worst_pairs"]} <= planted | flagged


def test_heldout_alone_has_no_near_copies(real_small, heldout_small) -> None:
    ext = PixelFeatures()
    check = MemorizationCheck(
        ext, extract_features(ext, real_small.images), gates=["near_copy_fraction <= 0.01"]
    )
    check.update_features(extract_features(ext, heldout_small.images))
    assert check.compute().passed


def test_duplicate_detection_finds_planted_duplicates(real_small, heldout_small) -> None:
    imgs = heldout_small.images.copy()
    imgs[[11, 12, 13]] = imgs[10]  # exact
    rng = np.random.default_rng(6)
    noisy = np.clip(imgs[100].astype(np.int16) + rng.integers(-4, 5, imgs[100].shape), 0, 255).astype(
        np.uint8
    )
    imgs[200] = noisy  # near duplicate of 100
    ext = PixelFeatures()
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2)
    check = DuplicateCheck(ext, extract_features(ext, real_small.images))
    check.update_images(x, ext(x))
    near, exact = check.compute_all()
    clusters = near.details["clusters"]
    assert [10, 11, 12, 13] in clusters and [100, 200] in clusters
    assert near.value == pytest.approx(4 / len(imgs))
    assert exact.value == pytest.approx(3 / len(imgs))
    clean = DuplicateCheck(ext, extract_features(ext, real_small.images))
    orig = torch.from_numpy(heldout_small.images).permute(0, 3, 1, 2)
    clean.update_images(orig, ext(orig))
    assert clean.compute().value <= 0.01


def test_label_agreement_of_real_test_images_is_the_classifier_accuracy(
    tiny_classifier, heldout_small
) -> None:
    batch = heldout_small.to_batch()
    acc = tiny_classifier.accuracy(batch)
    check = LabelCheck(tiny_classifier, 10, class_names=heldout_small.classes)
    for s in range(0, batch.batch_size, 64):
        check.update(batch.index(torch.arange(s, min(s + 64, batch.batch_size))))
    agreement, worst, inception = check.compute_all()
    n = batch.batch_size
    assert round(agreement.value * n) == round(acc * n)  # the same count of correct images
    assert agreement.value == pytest.approx(acc, abs=1e-6)  # accuracy() averages in float32
    assert 0.3 < acc < 1.0  # a real classifier, not a constant
    per = agreement.details["per_class"]
    assert set(per) == set(heldout_small.classes)
    assert worst.value == pytest.approx(min(per.values()))
    cm = np.asarray(agreement.details["confusion"])
    assert cm.sum() == len(heldout_small) and np.trace(cm) / cm.sum() == pytest.approx(acc)
    assert 1.0 < inception.value <= 10.0
