"""Blur ops: properties, golden values against torchvision, kernels, backends agree, gradients."""

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
from augmentgen.ops.blur import GaussianBlur, MotionBlur
from augmentgen.ops.functional import blur as fb

BLUR_OPS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "gaussian_blur": ({"sigma": (0.5, 2.0)}, {"sigma": 0.0, "kernel_size": 5}),
    "motion_blur": ({"length": (2.0, 6.0), "angle": (0.0, 360.0)}, {"length": 0.0}),
}

images = st.tuples(
    st.integers(1, 3),
    st.sampled_from([1, 3]),
    st.integers(1, 9),
    st.integers(1, 9),
    st.sampled_from(["uint8", "float32"]),
    st.integers(0, 2**31 - 1),
)


def _make(b: int, c: int, h: int, w: int, dtype: str, seed: int) -> torch.Tensor:
    x = torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))
    return (x * 255).round().to(torch.uint8) if dtype == "uint8" else x


@pytest.mark.parametrize("name", sorted(BLUR_OPS))
@settings(max_examples=12, deadline=None)
@given(spec=images)
def test_properties(name: str, spec: tuple[int, int, int, int, str, int]) -> None:
    active, zero = BLUR_OPS[name]
    x = _make(*spec)
    batch = Batch(x)
    op = OPS.get(name)(**active)
    out = op.apply(batch, op.sample_params(batch, torch.Generator().manual_seed(spec[-1]))).image
    assert out.shape == x.shape and out.dtype == x.dtype
    lo, hi = (x.min(), x.max())
    # a normalized non-negative kernel never leaves the range, up to float32 rounding of its sum
    tol = 0 if x.dtype == torch.uint8 else 1e-5 * max(1.0, float(hi))
    assert out.min() >= lo - tol and out.max() <= hi + tol
    again = op.apply(batch, op.sample_params(batch, torch.Generator().manual_seed(spec[-1]))).image
    assert torch.equal(out, again)
    off = OPS.get(name)(**active, p=0.0)
    assert torch.equal(off.apply(batch, off.sample_params(batch, torch.Generator())).image, x)
    z = OPS.get(name)(**zero)
    assert torch.equal(z.apply(batch, z.sample_params(batch, torch.Generator())).image, x)
    s = Sample(x[0].permute(1, 2, 0).numpy().copy())
    assert np.array_equal(z.apply_sample(s, z.sample_params(s, np.random.default_rng(0))).image, s.image)
    out_s = op.apply_sample(s, op.sample_params(s, np.random.default_rng(spec[-1]))).image
    assert out_s.shape == s.image.shape and out_s.dtype == s.image.dtype


@pytest.mark.parametrize("name", sorted(BLUR_OPS))
def test_pickle_and_dict_round_trip(name: str) -> None:
    op = OPS.get(name)(**BLUR_OPS[name][0])
    s = Sample(np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8))
    for clone in (pickle.loads(pickle.dumps(op)), op_from_dict(op.to_dict())):
        assert clone == op
        a = op.apply_sample(s, op.sample_params(s, np.random.default_rng(5))).image
        b = clone.apply_sample(s, clone.sample_params(s, np.random.default_rng(5))).image
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", sorted(BLUR_OPS))
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize(("h", "w", "channels"), [(17, 23, 3), (15, 12, 1), (3, 2, 3)])
def test_backends_agree(name: str, dtype: type, h: int, w: int, channels: int) -> None:
    img = data.astronaut()[::16, ::16][:h, :w, :channels].copy()
    if dtype == np.float32:
        img = img.astype(np.float32) / 255.0
    op = OPS.get(name)(**BLUR_OPS[name][0])
    s = Sample(img)
    for seed in range(3):
        params = op.sample_params(s, np.random.default_rng(seed))
        a = op.apply_sample(s, params).image
        x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
        b = op.apply(Batch(x), params.to_torch()).image[0].permute(1, 2, 0).numpy()
        assert a.dtype == b.dtype and a.shape == b.shape
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64)).max()
        assert diff <= (1.0 if dtype == np.uint8 else 1e-5), (name, seed, diff)


@pytest.mark.parametrize(("sigma", "ksize"), [(0.8, 5), (1.5, 7), (2.0, 0)])
def test_golden_gaussian_blur_vs_torchvision(sigma: float, ksize: int) -> None:
    x = torch.from_numpy(data.camera()[::8, ::8].copy())[None, None].float() / 255
    op = GaussianBlur(sigma=sigma, kernel_size=ksize)
    k = op.ksize()
    assert k == (ksize or 2 * int(np.ceil(3 * sigma)) + 1)
    ours = op.apply(Batch(x), op.sample_params(Batch(x), torch.Generator())).image
    torch.testing.assert_close(ours, TF.gaussian_blur(x, [k, k], [sigma, sigma]), atol=1e-5, rtol=0)
    u8 = (x * 255).round().to(torch.uint8)
    ours8 = op.apply(Batch(u8), op.sample_params(Batch(u8), torch.Generator())).image
    assert (ours8.int() - TF.gaussian_blur(u8, [k, k], [sigma, sigma]).int()).abs().max() <= 1


def test_per_sample_sigma_in_one_batch() -> None:
    x = torch.rand(1, 3, 16, 16).expand(3, -1, -1, -1).contiguous()
    op = GaussianBlur(sigma=(0.5, 3.0))
    p = op.sample_params(Batch(x), torch.Generator().manual_seed(0))
    out = op.apply(Batch(x), p).image
    k = op.ksize()
    for i, s in enumerate(torch.as_tensor(p.sigma).tolist()):  # type: ignore[attr-defined]
        torch.testing.assert_close(
            out[i : i + 1], TF.gaussian_blur(x[i : i + 1], [k, k], [s, s]), atol=1e-5, rtol=0
        )


def test_motion_kernel_shape() -> None:
    k = fb.motion_kernel(torch.tensor([4.0, 4.0, 0.0]), torch.tensor([0.0, 90.0, 33.0]), 7)
    assert torch.allclose(k.sum((-2, -1)), torch.ones(3))
    horiz = torch.zeros(7, 7)
    horiz[3, 1:6] = 0.2
    torch.testing.assert_close(k[0], horiz, atol=1e-6, rtol=0)
    torch.testing.assert_close(k[1], horiz.T, atol=1e-6, rtol=0)
    delta = torch.zeros(7, 7)
    delta[3, 3] = 1.0
    assert torch.equal(k[2], delta)
    k45 = fb.motion_kernel(torch.tensor([6.0]), torch.tensor([45.0]), 9)[0]
    assert k45[2, 6] > 0 and k45[6, 2] > 0 and k45[2, 2] == 0  # up-right on screen (y down)
    np.testing.assert_array_equal(fb.motion_kernel_np(6.0, 45.0, 9), k45.numpy())


def test_motion_blur_smears_along_the_angle() -> None:
    x = torch.zeros(1, 1, 15, 15)
    x[0, 0, 7, 7] = 1.0
    op = MotionBlur(length=6.0, angle=0.0)
    out = op.apply(Batch(x), op.sample_params(Batch(x), torch.Generator())).image[0, 0]
    assert (out[7, 4:11] > 0).all() and out[6].abs().sum() == 0 and out[8].abs().sum() == 0
    const = torch.full((2, 3, 9, 9), 0.3)
    op2 = MotionBlur()
    torch.testing.assert_close(
        op2.apply(Batch(const), op2.sample_params(Batch(const), torch.Generator())).image, const
    )


def test_gradients_and_float16() -> None:
    x = torch.rand(2, 3, 12, 12, requires_grad=True)
    for op in (GaussianBlur(), MotionBlur()):
        b = Batch(x)
        p = op.sample_params(b, torch.Generator().manual_seed(0))
        out = op.apply(b, p).image
        (g,) = torch.autograd.grad((out * torch.linspace(0, 1, 12)).sum(), x)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
        half = op.apply(Batch(x.detach().half()), p).image
        assert half.dtype == torch.float16
        torch.testing.assert_close(half.float(), out.detach(), atol=2e-3, rtol=0)


def test_bad_hyperparameters_are_named() -> None:
    with pytest.raises(ValueError, match="GaussianBlur.kernel_size"):
        GaussianBlur(kernel_size=4)
    with pytest.raises(ValueError, match="MotionBlur.length"):
        MotionBlur(length=(-1.0, 2.0))


# ---- median blur -------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    channels=st.sampled_from([1, 3]),
    k=st.sampled_from([3, 5, 7, 9]),
    as_float=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_median_blur_is_cv2_median_blur_on_both_backends(h: int, w: int, channels: int, k: int, as_float: bool, seed: int) -> None:
    import cv2

    from augmentgen.ops.blur import MedianBlur

    img = np.random.default_rng(seed).integers(0, 256, (h, w, channels)).astype(np.uint8)
    x = img.astype(np.float32) / 255 if as_float else img
    op = MedianBlur(ksize=k)
    s = Sample(x)
    out = op.apply_sample(s, op.sample_params(s, np.random.default_rng(0))).image
    batch = Batch(torch.from_numpy(x).permute(2, 0, 1)[None])
    out_b = op.apply(batch, op.sample_params(batch, torch.Generator())).image[0].permute(1, 2, 0).numpy()
    assert out.dtype == x.dtype and np.array_equal(out, out_b)
    unfolded = fb.median_unfold(torch.from_numpy(x).permute(2, 0, 1)[None], k)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(out, unfolded)  # the accelerator's path (the CPU's goes through OpenCV where it can)
    if not as_float or k <= 5:  # OpenCV filters float32 only up to k = 5
        assert np.array_equal(out, cv2.medianBlur(x, k).reshape(x.shape))
    else:  # beyond, the same definition: the median of the window, edges replicated
        pad = np.pad(x, ((k // 2, k // 2), (k // 2, k // 2), (0, 0)), mode="edge")
        win = np.lib.stride_tricks.sliding_window_view(pad, (k, k), axis=(0, 1))
        assert np.array_equal(out, np.median(win.reshape(h, w, channels, k * k), axis=-1).astype(np.float32))


def test_median_blur_draws_odd_windows_per_sample_and_cleans_salt_and_pepper() -> None:
    import albumentations as A

    from augmentgen.ops.blur import MedianBlur

    img = np.ascontiguousarray(data.astronaut()[::16, ::16])  # 32 px
    noisy = img.copy()
    rng = np.random.default_rng(1)
    dots = rng.random(img.shape[:2]) < 0.05
    noisy[dots] = rng.choice([0, 255], size=(int(dots.sum()), 1))
    op = MedianBlur(ksize=(3, 7))
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None].repeat(300, 1, 1, 1)
    prm = op.sample_params(Batch(x), torch.Generator().manual_seed(0))
    sizes = prm.ksize.tolist()  # type: ignore[attr-defined]
    assert set(sizes) == {3, 5, 7} and all(abs(sizes.count(k) - 100) < 35 for k in (3, 5, 7))
    out = op.apply(Batch(x), prm).image
    for i in (sizes.index(3), sizes.index(5), sizes.index(7)):  # each row with its own window
        want = A.MedianBlur(blur_limit=(sizes[i], sizes[i]), p=1.0)(image=noisy)["image"]
        assert np.array_equal(out[i].permute(1, 2, 0).numpy(), want)
    err = lambda a: np.abs(a.astype(int) - img.astype(int))[dots].mean()  # noqa: E731  (on the noisy pixels)
    assert err(out[sizes.index(3)].permute(1, 2, 0).numpy()) < 0.5 * err(noisy)
    with pytest.raises(ValueError, match="MedianBlur.ksize must be odd"):
        MedianBlur(ksize=(3, 6))
    with pytest.raises(ValueError, match="MedianBlur.ksize"):
        MedianBlur(ksize=1)
