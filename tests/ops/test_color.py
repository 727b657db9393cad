"""Color ops: properties over every op, golden values against torchvision, backends agree."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data

import augmentgen.ops  # noqa: F401
from augmentgen.core import OPS, Batch, Sample
from augmentgen.ops.base import op_from_dict
from augmentgen.ops.color import ColorJitter, ColorJitterParams, Gamma, Hue, Normalize
from augmentgen.ops.functional import color as fc

# name -> (active kwargs, zero-magnitude kwargs or None when the op has no magnitude)
COLOR_OPS: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "brightness": ({"brightness": 0.5}, {"brightness": 0.0}),
    "contrast": ({"contrast": 0.5}, {"contrast": 0.0}),
    "saturation": ({"saturation": 0.5}, {"saturation": 0.0}),
    "hue": ({"hue": 0.2}, {"hue": 0.0}),
    "color_jitter": (
        {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.1},
        {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0},
    ),
    "gamma": ({"gamma": (0.5, 2.0)}, {"gamma": 1.0}),
    "grayscale": ({}, None),
    "normalize": ({"mean": (0.5,), "std": (0.25,)}, None),
    "rgb_shift": ({"r_shift": 0.2, "g_shift": (-0.1, 0.3), "b_shift": 0.05}, {"r_shift": 0, "g_shift": 0, "b_shift": 0}),
    "channel_shuffle": ({}, None),
}


def _photo(size: int = 48) -> np.ndarray:
    import cv2

    return cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def _batch_from(img: np.ndarray) -> Batch:
    return Batch(torch.from_numpy(img).permute(2, 0, 1)[None].contiguous())


def _f32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)


images = st.tuples(
    st.integers(1, 3),  # B
    st.sampled_from([1, 3]),  # C
    st.integers(1, 9),  # H
    st.integers(1, 9),  # W
    st.sampled_from(["uint8", "float32"]),
    st.integers(0, 2**31 - 1),  # seed
)


def _make(b: int, c: int, h: int, w: int, dtype: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=g)
    return (x * 255).round().to(torch.uint8) if dtype == "uint8" else x


@pytest.mark.parametrize("name", sorted(COLOR_OPS))
@settings(max_examples=12, deadline=None)
@given(spec=images)
def test_properties(name: str, spec: tuple[int, int, int, int, str, int]) -> None:
    active, zero = COLOR_OPS[name]
    x = _make(*spec)
    batch = Batch(x)
    op = OPS.get(name)(**active)
    params = op.sample_params(batch, torch.Generator().manual_seed(spec[-1]))
    out = op.apply(batch, params).image
    assert out.shape == x.shape
    if name == "normalize":
        assert out.dtype == torch.float32
        assert torch.allclose(out, (_f32(x) - 0.5) / 0.25, atol=1e-6)
    else:
        assert out.dtype == x.dtype
        assert float(_f32(out).min()) >= 0.0 and float(_f32(out).max()) <= 1.0
    # same seed, same output; replay of the params is exact
    again = op.apply(batch, op.sample_params(batch, torch.Generator().manual_seed(spec[-1]))).image
    assert torch.equal(out, again)
    # p = 0 is the exact identity
    off = OPS.get(name)(**active, p=0.0)
    assert torch.equal(off.apply(batch, off.sample_params(batch, torch.Generator())).image, x)
    if zero is not None:
        z = OPS.get(name)(**zero)
        assert torch.equal(z.apply(batch, z.sample_params(batch, torch.Generator())).image, x)
        s = Sample(x[0].permute(1, 2, 0).numpy().copy())
        zs = z.apply_sample(s, z.sample_params(s, np.random.default_rng(spec[-1])))
        assert np.array_equal(zs.image, s.image)


@pytest.mark.parametrize("name", sorted(COLOR_OPS))
def test_pickle_and_dict_round_trip(name: str) -> None:
    op = OPS.get(name)(**COLOR_OPS[name][0])
    s = Sample(_photo(16))
    for clone in (pickle.loads(pickle.dumps(op)), op_from_dict(op.to_dict())):
        assert clone == op
        a = op.apply_sample(s, op.sample_params(s, np.random.default_rng(3)))
        b = clone.apply_sample(s, clone.sample_params(s, np.random.default_rng(3)))
        assert np.array_equal(a.image, b.image)


@pytest.mark.parametrize("name", sorted(COLOR_OPS))
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("channels", [1, 3])
def test_backends_agree(name: str, dtype: type, channels: int) -> None:
    """Sample path (OpenCV) and Batch path (torch) give the same output for the same params."""
    img = _photo(24)
    if channels == 1:
        img = img[:, :, :1].copy()
    if dtype == np.float32:
        img = img.astype(np.float32) / 255.0
    active = dict(COLOR_OPS[name][0])
    if name == "normalize" and channels == 3:
        active = {}
    op = OPS.get(name)(**active)
    s = Sample(img)
    for seed in range(4):
        params = op.sample_params(s, np.random.default_rng(seed))
        a = op.apply_sample(s, params).image
        b = op.apply(_batch_from(img), params.to_torch()).image[0].permute(1, 2, 0).numpy()
        assert a.shape == b.shape and a.dtype == b.dtype
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64)).max()
        assert diff <= (1.0 if dtype == np.uint8 else 2e-5), (name, seed, diff)


def _tv(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32) / 255.0


def _apply_fixed(name: str, kwargs: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    op = OPS.get(name)(**kwargs)
    b = Batch(x)
    return op.apply(b, op.sample_params(b, torch.Generator())).image


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.0, 1.7])
def test_golden_brightness_contrast_saturation(factor: float) -> None:
    x = _tv(torch.from_numpy(_photo(32)).permute(2, 0, 1)[None])
    fixed = (factor, factor)
    torch.testing.assert_close(
        _apply_fixed("brightness", {"brightness": fixed}, x), TF.adjust_brightness(x, factor)
    )
    # torchvision's luma weights are (0.2989, 0.587, 0.114), ours sum to exactly 1
    torch.testing.assert_close(
        _apply_fixed("contrast", {"contrast": fixed}, x), TF.adjust_contrast(x, factor), atol=2e-4, rtol=0
    )
    torch.testing.assert_close(
        _apply_fixed("saturation", {"saturation": fixed}, x),
        TF.adjust_saturation(x, factor),
        atol=2e-4,
        rtol=0,
    )


def test_golden_uint8_brightness_matches_torchvision_to_one_level() -> None:
    x = torch.from_numpy(_photo(32)).permute(2, 0, 1)[None].contiguous()
    ours = _apply_fixed("brightness", {"brightness": (1.3, 1.3)}, x)
    ref = TF.adjust_brightness(x, 1.3)
    assert (ours.int() - ref.int()).abs().max() <= 1


@pytest.mark.parametrize(("shift", "tol"), [(0.02, 0.015), (0.05, 0.035), (0.1, 0.06), (-0.1, 0.06)])
def test_golden_hue_within_stated_tolerance(shift: float, tol: float) -> None:
    """Affine hue vs torchvision's HSV hue: mean abs difference under the documented bound."""
    errs = []
    for photo in (data.astronaut(), data.coffee()):
        x = _tv(torch.from_numpy(photo[::4, ::4].copy()).permute(2, 0, 1)[None])
        ours = _apply_fixed("hue", {"hue": (shift, shift)}, x)
        errs.append(float((ours - TF.adjust_hue(x, shift)).abs().mean()))
    assert np.mean(errs) < tol
    # and it is far closer than doing nothing at the larger shifts
    x = _tv(torch.from_numpy(data.chelsea()[::4, ::4].copy()).permute(2, 0, 1)[None])
    ours = _apply_fixed("hue", {"hue": (shift, shift)}, x)
    ref = TF.adjust_hue(x, shift)
    assert float((ours - ref).abs().mean()) < float((x - ref).abs().mean())


def test_hue_keeps_gray_and_rotates_red_toward_yellow() -> None:
    gray = torch.full((1, 3, 2, 2), 0.4)
    assert torch.allclose(_apply_fixed("hue", {"hue": (0.3, 0.3)}, gray), gray, atol=1e-6)
    red = torch.tensor([0.8, 0.2, 0.2]).reshape(1, 3, 1, 1)
    out = _apply_fixed("hue", {"hue": (0.05, 0.05)}, red).flatten()
    assert out[1] > 0.2 + 0.05 and out[0] > out[1] > out[2]  # green rises first, as in HSV


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.2])
def test_golden_gamma(gamma: float) -> None:
    img = _photo(32)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
    ref = TF.adjust_gamma(_tv(x), gamma)
    torch.testing.assert_close(_apply_fixed("gamma", {"gamma": gamma}, _tv(x)), ref, atol=1e-5, rtol=0)
    op = Gamma(gamma=gamma)
    s = Sample(img)
    out = op.apply_sample(s, op.sample_params(s, np.random.default_rng(0))).image
    assert np.abs(out.astype(int) - (ref[0].permute(1, 2, 0).numpy() * 255).round().astype(int)).max() <= 1


def test_golden_grayscale_and_normalize() -> None:
    x = _tv(torch.from_numpy(_photo(32)).permute(2, 0, 1)[None])
    torch.testing.assert_close(
        _apply_fixed("grayscale", {}, x), TF.rgb_to_grayscale(x, num_output_channels=3), atol=2e-4, rtol=0
    )
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    torch.testing.assert_close(
        _apply_fixed("normalize", {"mean": mean, "std": std}, x), TF.normalize(x, mean, std)
    )
    u8 = (x * 255).round().to(torch.uint8)
    out = _apply_fixed("normalize", {}, u8)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, TF.normalize(u8.float() / 255, list(mean), list(std)))


def test_normalize_rejects_partial_probability() -> None:
    with pytest.raises(ValueError, match="Normalize.p"):
        Normalize(p=0.5)


def test_jitter_equals_the_chain_of_single_ops() -> None:
    """The closed-form b -> c -> s -> h matrix equals applying the four ops in turn (no clamping)."""
    x = 0.3 + 0.4 * torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    b, c, s, h = 1.1, 0.8, 1.3, 0.07
    p = ColorJitterParams(
        applied=torch.ones(2, dtype=torch.bool),
        brightness=torch.full((2,), b),
        contrast=torch.full((2,), c),
        saturation=torch.full((2,), s),
        hue=torch.full((2,), h),
    )
    fused = ColorJitter().apply(Batch(x), p).image
    seq = x
    for name, v in (("brightness", b), ("contrast", c), ("saturation", s), ("hue", h)):
        seq = _apply_fixed(name, {name: (v, v)}, seq)
    torch.testing.assert_close(fused, seq, atol=1e-5, rtol=0)
    assert (fused.clamp(0.02, 0.98) == fused).all()  # the comparison above really had no clamping


def test_single_channel_uses_the_luminance_equivalent() -> None:
    g = torch.Generator().manual_seed(1)
    y = 0.3 + 0.4 * torch.rand(2, 1, 6, 6, generator=g)
    op = ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.2)
    params = op.sample_params(Batch(y), g)
    one = op.apply(Batch(y), params).image
    three = op.apply(Batch(y.expand(-1, 3, -1, -1).contiguous()), params).image
    luma = torch.tensor(fc.LUMA, dtype=torch.float32).reshape(1, 3, 1, 1)
    torch.testing.assert_close(one, (three * luma).sum(1, keepdim=True), atol=1e-5, rtol=0)


def test_compose_and_transform_mean_match_sequential_application() -> None:
    g = torch.Generator().manual_seed(2)
    x = 0.35 + 0.3 * torch.rand(3, 3, 5, 5, generator=g)
    m1 = fc.combine(fc.saturation_coefs(torch.tensor([0.5, 1.2, 1.0])))
    m2 = fc.combine(fc.contrast_coefs(torch.tensor([0.9, 1.1, 0.7]), fc.gray_of(fc.mean_rgb(x))))
    both = fc.compose_color(m2, m1)
    assert isinstance(both, torch.Tensor) and isinstance(m1, torch.Tensor)
    torch.testing.assert_close(
        fc.color_affine(x, both), fc.color_affine(fc.color_affine(x, m1), m2), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        fc.transform_mean(m1, fc.mean_rgb(x)), fc.mean_rgb(fc.color_affine(x, m1)), atol=1e-6, rtol=0
    )
    # numpy path of the same helpers
    m1n, m2n = m1.numpy(), m2.numpy()
    torch.testing.assert_close(torch.from_numpy(np.asarray(fc.compose_color(m2n, m1n))), both)


def test_gradients_flow_and_float16_works() -> None:
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    b = Batch(x)
    for op in (ColorJitter(hue=0.1), Gamma(gamma=(0.5, 2.0)), Hue()):
        out = op.apply(b, op.sample_params(b, torch.Generator().manual_seed(0))).image
        (grad,) = torch.autograd.grad(out.sum(), x)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    z = torch.zeros(2, 3, 4, 4, requires_grad=True)  # gamma < 1 at 0: finite gradient
    out = Gamma(gamma=0.5).apply(Batch(z), Gamma(gamma=0.5).sample_params(Batch(z), torch.Generator())).image
    (gz,) = torch.autograd.grad(out.sum(), z)
    assert torch.isfinite(gz).all()
    h = torch.rand(2, 3, 8, 8)
    op = ColorJitter(hue=0.1)
    params = op.sample_params(Batch(h), torch.Generator().manual_seed(0))
    half = op.apply(Batch(h.half()), params).image
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), op.apply(Batch(h), params).image, atol=2e-3, rtol=0)


def test_draws_follow_the_ranges_and_same_on_batch() -> None:
    op = ColorJitter(
        brightness=(0.5, 0.6), contrast=0.1, saturation=0.0, hue=(-0.2, -0.1), same_on_batch=True
    )
    b = Batch(torch.rand(64, 3, 2, 2))
    p = op.sample_params(b, torch.Generator().manual_seed(0))
    assert isinstance(p, ColorJitterParams)
    bright = torch.as_tensor(p.brightness)
    assert ((bright >= 0.5) & (bright <= 0.6)).all() and (bright == bright[0]).all()
    assert (torch.as_tensor(p.saturation) == 1.0).all()
    assert ((torch.as_tensor(p.hue) >= -0.2) & (torch.as_tensor(p.hue) <= -0.1)).all()
    pn = ColorJitter(contrast=(0.9, 1.1)).sample_params(Sample(_photo(8)), np.random.default_rng(0))
    assert (
        isinstance(pn, ColorJitterParams)
        and isinstance(pn.contrast, np.ndarray)
        and pn.contrast.shape == (1,)
    )


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (ColorJitter, {"hue": 0.7}, "ColorJitter.hue"),
        (ColorJitter, {"brightness": (1.2, 0.8)}, "ColorJitter.brightness"),
        (Hue, {"hue": (-0.6, 0.1)}, "Hue.hue"),
        (Gamma, {"gamma": (0.0, 1.0)}, "Gamma.gamma"),
        (Normalize, {"std": (0.0,)}, "Normalize.std"),
    ],
)
def test_bad_hyperparameters_are_named(cls: type, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_color_affine_rejects_other_channel_counts() -> None:
    with pytest.raises(ValueError, match="1 or 3 channels"):
        fc.color_affine(torch.rand(1, 4, 2, 2), torch.eye(3, 4)[None])


def test_a_pipeline_first_run_under_inference_mode_still_backpropagates_later() -> None:
    """The ops' cached constant tensors are made outside inference mode: shard writing runs ops under
    ``torch.inference_mode`` first, and a GAN's DiffAugment later backpropagates through the same ops
    in the same process (this failed with 'Inference tensors cannot be saved for backward')."""
    from augmentgen.core.rng import torch_rng
    from augmentgen.ops.functional import noise as fn
    from augmentgen.ops.functional import precipitation as fp
    from augmentgen.pipeline import Pipeline

    for cached in (fc._basis_t, fn._bank_torch, fp._ubank_torch):
        cached.cache_clear()
    pipe = Pipeline.from_dict([{"name": "contrast", "contrast": 0.5}, {"name": "saturation", "saturation": 0.5},
                               {"name": "gaussian_noise"}, {"name": "rain"}])  # fmt: skip
    with torch.inference_mode():
        pipe(Batch(torch.rand(2, 3, 16, 16)), rng=torch_rng(0))
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    out = Pipeline.from_dict([{"name": "contrast", "contrast": 0.5}])(Batch(x), rng=torch_rng(1))
    out.image.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert not fc._basis_t(x.device).is_inference()
    assert fn._bank_torch.cache_info().currsize and fp._ubank_torch.cache_info().currsize  # made under inference_mode
    assert not fp._ubank_torch(x.device).is_inference()


def test_every_registered_color_op_is_covered() -> None:
    assert {n for n, cls in OPS.items() if getattr(cls, "kind", "") == "color"} <= set(COLOR_OPS)


def test_rgb_shift_is_albumentations_rgbshift() -> None:
    import albumentations as A

    img = _photo(32)
    levels = {"r": 10, "g": -25, "b": 0}
    ours = {f"{k}_shift": (v / 255, v / 255) for k, v in levels.items()}
    want = A.RGBShift(**{f"{k}_shift_limit": (v, v) for k, v in levels.items()}, p=1.0)(image=img)["image"]
    op = OPS.get("rgb_shift")(**ours)
    s = Sample(img)
    assert np.array_equal(op.apply_sample(s, op.sample_params(s, np.random.default_rng(0))).image, want)
    out = op.apply(_batch_from(img), op.sample_params(_batch_from(img), torch.Generator())).image[0]
    assert torch.equal(out.permute(1, 2, 0), torch.from_numpy(want))
    with pytest.raises(ValueError, match="RGBShift.g_shift"):
        OPS.get("rgb_shift")(g_shift=(0.2, 1.5))


def test_channel_shuffle_gives_each_of_the_six_orders() -> None:
    img = _photo(16)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].repeat(600, 1, 1, 1)
    op = OPS.get("channel_shuffle")()
    params = op.sample_params(Batch(x), torch.Generator().manual_seed(0))
    out = op.apply(Batch(x), params).image
    orders = []
    for row in out[:, :, 0, 0].tolist():
        order = [img[0, 0].tolist().index(v) for v in row]
        orders.append(tuple(order))
    counts = {p: orders.count(p) for p in set(orders)}
    assert len(counts) == 6 and min(counts.values()) > 60, counts  # 100 each expected (sd ~9)
    for i in range(0, 600, 97):  # the channels moved whole, as the params say
        perm = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)][int(params.order[i])]
        assert torch.equal(out[i], x[i][list(perm)])
    s = Sample(img)
    one = op.apply_sample(s, op.sample_params(s, np.random.default_rng(5))).image
    assert sorted(one[0, 0].tolist()) == sorted(img[0, 0].tolist()) and one.shape == img.shape
    gray = Sample(img[:, :, :1].copy())
    assert np.array_equal(op.apply_sample(gray, op.sample_params(gray, np.random.default_rng(1))).image, gray.image)
