"""Per-sample filters for shard writing and their drop counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augmentgen.checks.features import PixelFeatures, extract_features
from augmentgen.checks.filters import (
    BlankFilter,
    ConfidenceFilter,
    DuplicateFilter,
    FilterChain,
    FiniteFilter,
    NearCopyFilter,
    SampleFilter,
)
from augmentgen.core.batch import Batch


def _batch(ds, idx) -> Batch:
    return ds.to_batch(np.asarray(idx))


def test_all_filters_follow_the_protocol(real_small) -> None:
    feats = extract_features(PixelFeatures(), real_small.images)
    fs = [
        FiniteFilter(),
        BlankFilter(),
        ConfidenceFilter(lambda x: torch.zeros(len(x), 10), 0.5),
        NearCopyFilter(feats),
        DuplicateFilter(0.5),
    ]
    assert all(isinstance(f, SampleFilter) for f in fs)
    assert len({f.reason for f in fs}) == len(fs)


def test_finite_and_blank() -> None:
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x[1, 0, 3, 3] = float("nan")
    x[2] = 0.5
    x[3, 0, 0, 0] = float("inf")
    assert FiniteFilter().keep(Batch(x)).tolist() == [True, False, True, False]
    assert BlankFilter().keep(Batch(x)).tolist()[:3] == [True, True, False]
    assert FiniteFilter().keep(Batch((x.nan_to_num() * 255).to(torch.uint8))).all()
    with pytest.raises(ValueError, match="min_std"):
        BlankFilter(-1.0)


def test_confidence_uses_conditioning_label(tiny_classifier, heldout_small) -> None:
    b = _batch(heldout_small, range(200))
    probs = tiny_classifier(b.image).softmax(1)
    conf = probs.gather(1, b.label[:, None])[:, 0]  # type: ignore[index]
    f = ConfidenceFilter(tiny_classifier, 0.5)
    assert torch.equal(f.keep(b), conf >= 0.5)
    with pytest.raises(ValueError, match="batch.label"):
        f.keep(Batch(b.image))


def test_near_copy_filter_drops_copies_keeps_heldout(real_small, heldout_small) -> None:
    train = extract_features(PixelFeatures(), real_small.images)
    f = NearCopyFilter(train)
    copies = _batch(real_small, range(0, 400, 20))
    noisy = copies.replace(
        image=(
            copies.image + 0.02 * torch.randn(copies.image.shape, generator=torch.Generator().manual_seed(1))
        ).clamp(0, 1)
    )
    assert not f.keep(copies).any()
    assert not f.keep(noisy).any()
    held = f.keep(_batch(heldout_small, range(300)))
    assert float(held.float().mean()) >= 0.99


def test_duplicate_filter_across_batches_and_reset(heldout_small) -> None:
    b = _batch(heldout_small, range(40))
    f = DuplicateFilter.from_real(extract_features(PixelFeatures(), heldout_small.images))
    first = f.keep(b)
    assert first.all()
    again = f.keep(b)
    assert not again.any()  # every one seen before
    img = b.image.clone()
    img[5] = img[2]  # exact duplicate inside one batch
    img[7] = (img[3] + 0.01 * torch.randn(img[3].shape, generator=torch.Generator().manual_seed(2))).clamp(
        0, 1
    )
    f.reset()
    keep = f.keep(b.replace(image=img))
    assert keep.tolist() == [i not in (5, 7) for i in range(40)]


def test_chain_counts_first_failing_reason_and_resets(heldout_small) -> None:
    b = _batch(heldout_small, range(10))
    img = b.image.clone()
    img[0] = float("nan")
    img[1] = 0.0
    img[2] = img[3]
    chain = FilterChain([FiniteFilter(), BlankFilter(), DuplicateFilter()])
    out = chain(b.replace(image=img))
    assert out.batch_size == 7
    assert torch.equal(out.label, b.label[[2, 4, 5, 6, 7, 8, 9]])  # type: ignore[index]  # row 3 repeats row 2
    assert chain.counts == {"seen": 10, "kept": 7, "nonfinite": 1, "blank": 1, "duplicate": 1}
    assert chain.rejected() == {"nonfinite": 1, "blank": 1, "duplicate": 1}
    chain(b.replace(image=img))
    assert chain.counts["seen"] == 20 and chain.counts["duplicate"] == 1 + 8  # rows 2-9 all seen now
    chain.reset()
    assert set(chain.counts.values()) == {0}
    chain(b)
    assert chain.counts["kept"] == 10


def test_chain_rejects_duplicate_reasons() -> None:
    with pytest.raises(ValueError, match="share a reason"):
        FilterChain([BlankFilter(), BlankFilter()])
