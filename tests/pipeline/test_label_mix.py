"""LabelMix (MixUp / CutMix): exact targets, pixels from the right rows, seeded draws, torchvision parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from augmentgen.core.batch import Batch, Boxes
from augmentgen.pipeline import CutMix, LabelMix, LabelMixParams, MixUp, make_loader
from augmentgen.pipeline.label_mix import cutmix_box


def _params(partner, lam, cut, box) -> LabelMixParams:
    return LabelMixParams(
        partner=torch.tensor(partner, dtype=torch.int64),
        lam=torch.tensor(lam, dtype=torch.float64),
        cut=torch.tensor(cut),
        box=torch.tensor(box, dtype=torch.int64),
    )


def test_golden_cutmix_and_mixup_rows():
    # row 0: CutMix with the box x 1..3, y 0..2 of a 4x4 image (4 of 16 pixels from row 1);
    # row 1: MixUp at 0.25 of its own; row 2: left alone
    x = torch.stack([torch.full((1, 4, 4), v) for v in (0.0, 1.0, 0.5)])
    mix = LabelMix(num_classes=3)
    p = _params([1, 2, 0], [0.75, 0.25, 1.0], [True, False, False], [[1, 0, 3, 2], [0] * 4, [0] * 4])
    out, t = mix.apply(x, torch.tensor([0, 1, 2]), p)
    want0 = torch.zeros(4, 4)
    want0[0:2, 1:3] = 1.0
    assert torch.equal(out[0, 0], want0)
    assert torch.allclose(out[1], torch.full((1, 4, 4), 0.25 * 1.0 + 0.75 * 0.5))
    assert torch.equal(out[2], x[2])
    assert torch.allclose(t, torch.tensor([[0.75, 0.25, 0.0], [0.0, 0.25, 0.75], [0.0, 0.0, 1.0]]))
    # label smoothing 0.3 over 3 classes: 0.8 on the label, 0.1 elsewhere, then mixed
    t_s = LabelMix(num_classes=3, label_smoothing=0.3).apply(x, torch.tensor([0, 1, 2]), p)[1]
    assert torch.allclose(t_s[0], torch.tensor([0.75 * 0.8 + 0.25 * 0.1, 0.75 * 0.1 + 0.25 * 0.8, 0.1]))
    assert torch.allclose(t_s[2], torch.tensor([0.1, 0.1, 0.8]))


def test_cutmix_box_golden():
    # lam 0.75: half-sides int(0.25 * 8) = 2 around (3, 1), clipped at the top: x 1..5, y 0..3
    box, kept = cutmix_box(np.array([0.75]), np.array([3]), np.array([1]), (8, 8))
    assert box.tolist() == [[1, 0, 5, 3]]
    assert kept[0] == pytest.approx(1 - 12 / 64)
    # lam 1: an empty box keeps every pixel
    box, kept = cutmix_box(np.array([1.0]), np.array([4]), np.array([4]), (8, 8))
    assert kept[0] == 1.0 and box[0, 2] - box[0, 0] == 0


def _check_rows(mix: LabelMix, params: LabelMixParams, n: int, h: int, w: int, k: int, smoothing: float) -> None:
    """Every output pixel comes from its row or its partner, in the share the target says."""
    # row i is the constant i + 1, so every output pixel says which row it came from
    x = torch.arange(1, n + 1, dtype=torch.float64).view(n, 1, 1, 1).expand(n, 2, h, w).contiguous()
    labels = torch.tensor([i % k for i in range(n)])
    out, t = mix.apply(x, labels, params)
    assert out.shape == x.shape and out.dtype == torch.float64 and t.dtype == torch.float64
    assert torch.allclose(t.sum(1), torch.ones(n, dtype=torch.float64))
    assert bool((t >= 0).all())
    on, off = 1 - smoothing + smoothing / k, smoothing / k
    for i in range(n):
        j = int(params.partner[i])
        lam = float(params.lam[i])
        assert 0.0 <= lam <= 1.0
        own = torch.full((k,), off, dtype=torch.float64)
        own[labels[i]] = on
        other = torch.full((k,), off, dtype=torch.float64)
        other[labels[j]] = on
        assert torch.allclose(t[i], lam * own + (1 - lam) * other)
        if bool(params.cut[i]):
            from_partner = out[i] == j + 1
            from_self = out[i] == i + 1
            assert bool((from_partner | from_self).all())
            if i != j:  # the share of pixels kept is the label weight, exactly
                assert from_self[0].sum().item() == round(lam * h * w)
                x1, y1, x2, y2 = params.box[i].tolist()
                assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h
                assert bool(from_partner[:, y1:y2, x1:x2].all())
        else:
            assert torch.allclose(out[i], lam * x[i] + (1 - lam) * x[j])
            if lam == 1.0:
                assert torch.equal(out[i], x[i])


@pytest.mark.parametrize("per_sample", [True, False])
@pytest.mark.parametrize("size", [(64, 64), (70, 90)])
def test_large_images_copy_the_boxes(per_sample, size):
    # at 64 x 64 pixels and more, CutMix copies each box instead of a weight plane; same contract
    mix = LabelMix(6, mixup_alpha=0.5, cutmix_alpha=1.0, switch_prob=0.7, per_sample=per_sample, seed=3)
    for step in range(4):
        _check_rows(mix, mix.sample_params(7, size, mix.rng(0, step)), 7, *size, 6, 0.0)


def test_any_partner_permutation():
    mix = LabelMix(6, mixup_alpha=0.5, cutmix_alpha=1.0, switch_prob=0.5, seed=3)
    for size in [(8, 8), (64, 64)]:
        q = mix.sample_params(5, size, mix.rng(0, 1))
        q = LabelMixParams(partner=torch.tensor([3, 0, 4, 1, 2]), lam=q.lam, cut=q.cut, box=q.box)
        _check_rows(mix, q, 5, *size, 6, 0.0)
    with pytest.raises(ValueError, match="another batch size"):
        mix.apply(torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.int64), q)


@given(
    n=st.integers(1, 6),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    mixup=st.sampled_from([0.0, 0.2, 1.0]),
    cutmix=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    switch=st.floats(0.0, 1.0),
    p=st.floats(0.0, 1.0),
    smoothing=st.floats(0.0, 0.5),
    per_sample=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_rows_come_from_themselves_and_their_partner(n, h, w, mixup, cutmix, switch, p, smoothing, per_sample, seed):
    if mixup == 0 and cutmix == 0:
        mixup = 0.2
    k = 5
    mix = LabelMix(k, mixup, cutmix, switch, p, smoothing, per_sample, seed)
    params = mix.sample_params(n, (h, w), mix.rng(3, seed % 7))
    _check_rows(mix, params, n, h, w, k, smoothing)
    assert params.partner.tolist() == [(i - 1) % n for i in range(n)]
    if not per_sample:  # one draw for the whole batch
        assert len(set(params.lam.tolist())) == 1 and len(set(params.cut.tolist())) == 1


def test_draws_follow_their_distributions():
    mix = LabelMix(10, mixup_alpha=0.4, cutmix_alpha=1.0, switch_prob=0.3, p=0.8)
    ps = [mix.sample_params(1000, (32, 32), mix.rng(0, s)) for s in range(10)]
    lam = torch.cat([q.lam for q in ps])
    cut = torch.cat([q.cut for q in ps])
    mixed = lam < 1.0
    assert abs(cut.double().mean().item() - 0.8 * 0.3) < 0.02
    # rows left alone: 1 - p, plus a few CutMix boxes too small to hold a pixel
    assert abs(1 - mixed.double().mean().item() - 0.2) < 0.03
    blend = lam[(~cut) & mixed]
    a = 0.4  # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    assert abs(blend.mean().item() - 0.5) < 0.02
    assert abs(blend.var().item() - 1 / (4 * (2 * a + 1))) < 0.01
    # CutMix's kept share: its mean is E[1 - (2 int(sqrt(1 - lam) * 16))^2 / 1024] before clipping,
    # so about 1 - E[1 - lam] = 1/2 for alpha 1, and more where the box is clipped at the border
    assert 0.5 < lam[cut].mean().item() < 0.75


def test_seeded_per_batch_and_independent_of_the_global_rng():
    mix = LabelMix(10, seed=7)
    x, y = torch.rand(16, 3, 12, 12), torch.randint(0, 10, (16,))
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 (the global state the mix must not read)
    a = mix(x, y, epoch=1, step=2)
    torch.manual_seed(1)
    np.random.seed(1)  # noqa: NPY002
    b = mix(x, y, epoch=1, step=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = mix(x, y, epoch=1, step=3)
    d = LabelMix(10, seed=8)(x, y, epoch=1, step=2)
    assert not torch.equal(a[1], c[1]) and not torch.equal(a[1], d[1])
    # p changes which rows mix, never the other draws of the stream
    p1 = LabelMix(10, seed=7).sample_params(16, (12, 12), mix.rng(1, 2))
    p2 = LabelMix(10, seed=7, p=0.5).sample_params(16, (12, 12), mix.rng(1, 2))
    kept = p2.lam < 1.0
    assert torch.equal(p1.lam[kept], p2.lam[kept])


def test_same_as_torchvision_for_one_shared_draw():
    v2 = pytest.importorskip("torchvision.transforms.v2")
    x, y = torch.rand(6, 3, 10, 14), torch.tensor([0, 3, 1, 1, 2, 4])
    for seed in range(5):
        torch.manual_seed(seed)
        tv_img, tv_t = v2.MixUp(alpha=0.7, num_classes=5)(x, y)
        torch.manual_seed(seed)
        lam = float(torch.distributions.Beta(torch.tensor([0.7]), torch.tensor([0.7])).sample(()))
        p = _params([5, 0, 1, 2, 3, 4], [lam] * 6, [False] * 6, [[0] * 4] * 6)
        img, t = MixUp(5, alpha=0.7).apply(x, y, p)
        assert torch.allclose(img, tv_img, atol=1e-6) and torch.allclose(t, tv_t, atol=1e-6)

        torch.manual_seed(seed)
        tv_img, tv_t = v2.CutMix(alpha=1.0, num_classes=5)(x, y)
        torch.manual_seed(seed)
        lam = float(torch.distributions.Beta(torch.tensor([1.0]), torch.tensor([1.0])).sample(()))
        rx, ry = torch.randint(14, size=(1,)), torch.randint(10, size=(1,))
        box, kept = cutmix_box(np.array([lam]), rx.numpy(), ry.numpy(), (10, 14))
        p = _params([5, 0, 1, 2, 3, 4], [kept[0]] * 6, [True] * 6, box.repeat(6, 0).tolist())
        img, t = CutMix(5).apply(x, y, p)
        assert torch.equal(img, tv_img) and torch.allclose(t, tv_t, atol=1e-6)


def test_uint8_batches_and_dtypes():
    mix = LabelMix(4, seed=1)
    x8 = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 3, 0])
    img8, t = mix(x8, y, step=4)
    imgf, tf = mix(x8.float() / 255, y, step=4)
    assert img8.dtype == torch.float32 and torch.allclose(img8, imgf) and torch.equal(t, tf)
    img16, t16 = mix(x8.to(torch.bfloat16) / 255, y, step=4)
    assert img16.dtype == torch.bfloat16 and t16.dtype == torch.float32


def test_batch_in_batch_out_and_empty_batches():
    mix = CutMix(3, seed=0)
    b = Batch(torch.rand(4, 1, 6, 6), label=torch.tensor([0, 1, 2, 0]))
    out, t = mix(b, step=1)
    img, t2 = mix(b.image, b.label, step=1)
    assert isinstance(out, Batch) and torch.equal(out.image, img) and torch.equal(t, t2)
    assert torch.equal(out.label, b.label)
    img, t = mix(torch.rand(0, 3, 4, 4), torch.zeros(0, dtype=torch.int64))
    assert img.shape == (0, 3, 4, 4) and t.shape == (0, 3)
    one, t1 = LabelMix(3)(b.image[:1], b.label[:1])  # a batch of one mixes with itself: nothing changes
    assert torch.equal(one, b.image[:1]) and torch.equal(t1, torch.tensor([[1.0, 0.0, 0.0]]))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m(torch.rand(2, 3, 4, 4), torch.tensor([0, 5])), "label 5 of row 1 is outside"),
        (lambda m: m(torch.rand(2, 3, 4, 4), torch.tensor([-1, 0])), "label -1 of row 0"),
        (lambda m: m(torch.rand(2, 3, 4, 4), torch.tensor([0, 1, 2])), r"labels must be a \[B\] = \[2\]"),
        (lambda m: m(torch.rand(2, 3, 4, 4), torch.tensor([0.0, 1.0])), "integer class ids"),
        (lambda m: m(torch.rand(3, 4, 4), torch.tensor([0, 1, 2])), r"\[B, C, H, W\]"),
        (lambda m: m(torch.randint(0, 9, (2, 3, 4, 4)), torch.tensor([0, 1])), "float or uint8"),
        (lambda m: m(torch.rand(2, 3, 4, 4)), "pass the labels"),
        (lambda m: m(torch.rand(2, 3, 0, 4), torch.tensor([0, 1])), "no pixels"),
        (lambda m: m(Batch(torch.rand(2, 3, 4, 4))), "no labels"),
        (
            lambda m: m(
                Batch(torch.rand(1, 3, 4, 4), label=torch.tensor([0]), boxes=Boxes.from_list([torch.zeros(0, 4)]))
            ),
            "has boxes",
        ),
    ],
)
def test_bad_input_names_what(call, match):
    with pytest.raises(ValueError, match=match):
        call(LabelMix(5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 3, "mixup_alpha": 0, "cutmix_alpha": 0}, "both 0"),
        ({"num_classes": 3, "mixup_alpha": -1}, "mixup_alpha"),
        ({"num_classes": 3, "cutmix_alpha": math.nan}, "cutmix_alpha"),
        ({"num_classes": 3, "p": 1.5}, r"LabelMix.p must be in \[0, 1\]"),
        ({"num_classes": 3, "switch_prob": -0.1}, "switch_prob"),
        ({"num_classes": 3, "label_smoothing": 2}, "label_smoothing"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LabelMix(**kwargs)


def test_after_a_dataloader_the_mix_does_not_depend_on_workers():
    import augmentgen.ops  # noqa: F401
    from augmentgen.pipeline import Pipeline

    rs = np.random.default_rng(0)
    data = [(rs.integers(0, 256, (8, 8, 3), dtype=np.uint8), int(i % 4)) for i in range(24)]
    pipe = Pipeline.from_dict([{"name": "horizontal_flip", "p": 0.5}])
    mix = LabelMix(4, seed=3)
    runs = []
    for workers in (0, 2):
        loader = make_loader(data, pipe, seed=1, batch_size=8, num_workers=workers)
        loader.sampler.set_epoch(1)
        runs.append([mix(img, lab, epoch=1, step=k) for k, (img, lab) in enumerate(loader)])
    for (a, ta), (b, tb) in zip(*runs, strict=True):
        assert torch.equal(a, b) and torch.equal(ta, tb)
