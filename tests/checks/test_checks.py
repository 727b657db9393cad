"""The stateful Check classes: protocol, update paths, gates, registry, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augmentgen.checks.base import METRICS, make_result
from augmentgen.checks.diversity import ClassSpreadCheck, DuplicateCheck, ModeCoverageCheck, VendiCheck
from augmentgen.checks.features import PixelFeatures, extract_features
from augmentgen.checks.fidelity import FIDCheck, KIDCheck, PRDCCheck
from augmentgen.checks.functional.fidelity import fid, fidelity_pass, frechet_distance, gaussian_stats
from augmentgen.checks.labels import LabelCheck
from augmentgen.checks.memorization import MemorizationCheck
from augmentgen.checks.reconstruction import ReconstructionCheck
from augmentgen.core.batch import Batch
from augmentgen.core.check import Check
from augmentgen.core.registry import CHECKS


@pytest.fixture(scope="module")
def px(real_small, heldout_small):
    ext = PixelFeatures()
    return ext, extract_features(ext, real_small.images), torch.from_numpy(real_small.labels)


def _all_checks(px, classifier) -> list:
    ext, fr, yr = px
    return [
        FIDCheck(ext, fr),
        KIDCheck(ext, fr, subsets=5, subset_size=100),
        PRDCCheck(ext, fr),
        VendiCheck(ext, fr),
        ClassSpreadCheck(ext, fr, yr),
        ModeCoverageCheck(ext, fr, yr, modes=3),
        DuplicateCheck(ext, fr),
        MemorizationCheck(ext, fr),
        LabelCheck(classifier, 10),
    ]


def test_every_check_follows_the_protocol_and_is_registered(px, tiny_classifier) -> None:
    checks = _all_checks(px, tiny_classifier) + [ReconstructionCheck()]
    for c in checks:
        assert isinstance(c, Check), type(c).__name__
        assert CHECKS.get(c.name) is type(c)


def test_update_in_batches_equals_one_shot_features(px, heldout_small, tiny_classifier) -> None:
    ext, fr, yr = px
    for make in (
        lambda: FIDCheck(ext, fr),
        lambda: PRDCCheck(ext, fr),
        lambda: ClassSpreadCheck(ext, fr, yr),
        lambda: MemorizationCheck(ext, fr),
        lambda: DuplicateCheck(ext, fr),
    ):
        a, b = make(), make()
        for s in range(0, 300, 64):
            a.update(heldout_small.to_batch(np.arange(s, min(s + 64, 300))))
        whole = heldout_small.to_batch(np.arange(300))
        if isinstance(b, DuplicateCheck):
            b.update_images(whole.image, ext(whole.image), whole.label)
        else:
            b.update_features(ext(whole.image), whole.label)
        ra, rb = a.compute_all(), b.compute_all()
        assert [r.value for r in ra] == pytest.approx([r.value for r in rb], rel=1e-6), type(a).__name__


def test_results_are_named_by_catalogue_and_space(px, heldout_small, tiny_classifier) -> None:
    batch = heldout_small.to_batch(np.arange(200))
    for c in _all_checks(px, tiny_classifier):
        c.update(batch)
        for r in c.compute_all():
            key = r.details["key"]
            assert key in METRICS
            assert np.isfinite(r.value)
            if c.name != "labels" and key != "exact_duplicate_fraction":  # exact bytes: no feature space
                assert "pixels" in r.name
        assert c.compute().details["key"] == c.compute_all()[0].details["key"]


def test_fid_check_fewer_real_rows_than_dims_both_routes() -> None:
    """A check built on 40 real rows of 200-d features: factor route for 60 fakes, covariance route for 300."""
    g = torch.Generator().manual_seed(0)
    real = torch.randn(40, 200, generator=g, dtype=torch.float64)
    for n_fake in (60, 300):
        fake = torch.randn(n_fake, 200, generator=g, dtype=torch.float64) * 1.5 + 0.1
        c = FIDCheck(None, real, space="toy")
        c.update_features(fake)
        want = frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))
        # the eigen route on a singular covariance carries ~1e-8 relative rounding of its own
        assert c.compute().value == pytest.approx(want, rel=1e-7)


def test_check_values_equal_functional(px, heldout_small) -> None:
    ext, fr, _ = px
    ff = ext(heldout_small.to_batch(np.arange(300)).image)
    c = FIDCheck(None, fr, space="pixels")
    c.update_features(ff)
    assert c.compute().value == pytest.approx(fid(fr, ff), rel=1e-9)
    k = KIDCheck(None, fr, subsets=4, subset_size=100, seed=3)
    k.update_features(ff)
    first = k.compute().value
    assert k.compute().value == first  # repeatable: the seed, not a live RNG
    from augmentgen.core.rng import derive_seed

    fused = fidelity_pass(
        fr, ff, rng=np.random.default_rng(derive_seed(3, "kid")), subsets=4, subset_size=100
    )
    assert first == pytest.approx(fused["kid"], rel=1e-3)


def test_gates_on_checks(px, heldout_small) -> None:
    ext, fr, _ = px
    c = PRDCCheck(ext, fr, gates=["recall >= 0.99", "precision >= 0.1"])
    c.update(heldout_small.to_batch(np.arange(300)))
    res = {r.details["key"]: r for r in c.compute_all()}
    assert res["precision"].passed and res["precision"].threshold == 0.1
    assert not res["recall"].passed
    assert res["density"].threshold is None


def test_errors_are_clear(px) -> None:
    ext, fr, yr = px
    with pytest.raises(ValueError, match="before any update"):
        FIDCheck(ext, fr).compute()
    with pytest.raises(ValueError, match="conditioning labels"):
        ClassSpreadCheck(ext, fr, yr).update(Batch(torch.rand(3, 1, 28, 28)))
    with pytest.raises(ValueError, match="needs images"):
        d = DuplicateCheck(ext, fr)
        d.update_features(fr[:5])
        d.compute()
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        FIDCheck(ext, fr).update_features(torch.zeros(3))
    with pytest.raises(ValueError, match="no extractor"):
        FIDCheck(None, fr).update(Batch(torch.rand(2, 1, 28, 28)))
    with pytest.raises(ValueError, match="logits must be"):
        LabelCheck(None, 10).update_logits(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))


def test_vendi_ratio_and_spread_detect_collapse(px, heldout_small) -> None:
    ext, fr, yr = px
    b = heldout_small.to_batch(np.arange(300))
    one_per_class = torch.stack([b.image[b.label == c][0] for c in range(10)])  # type: ignore[index]
    collapsed = Batch(one_per_class.repeat_interleave(30, 0), label=torch.arange(10).repeat_interleave(30))
    v_ok, v_bad = VendiCheck(ext, fr), VendiCheck(ext, fr)
    v_ok.update(b)
    v_bad.update(collapsed)
    assert v_bad.compute_all()[1].value < 0.7 * v_ok.compute_all()[1].value  # 10 looks vs 300
    s = ClassSpreadCheck(ext, fr, yr)
    s.update(collapsed)
    assert s.compute().value == pytest.approx(0.0, abs=1e-3)


def test_reconstruction_check() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 16, 16, generator=g)
    c = ReconstructionCheck(gates=["ssim >= 0.5"])
    c.update(Batch((x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1), meta={"original": x}))
    psnr_r, ssim_r = c.compute_all()
    assert 20 < psnr_r.value < 35 and psnr_r.details["key"] == "psnr"
    assert ssim_r.passed
    same = ReconstructionCheck()
    same.update_pair(x, x)
    assert same.compute().value == 100.0  # capped, not inf
    with pytest.raises(ValueError, match="original"):
        ReconstructionCheck().update(Batch(x))


def test_make_result_unknown_key_keeps_key() -> None:
    r = make_result("my_metric", 1.5)
    assert r.name == "my_metric" and r.details["key"] == "my_metric"
