"""posterize, solarize, invert, autocontrast, equalize, sharpness: torchvision's uint8 results bit for bit, floats alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import augmentgen.ops  # noqa: F401
from augmentgen.ops.functional import levels as L
from augmentgen.pipeline import Pipeline


def _images(seed: int, b: int, h: int, w: int, low_contrast: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (b, 3, h, w), generator=g, dtype=torch.uint8)
    if low_contrast:  # narrow, uneven histograms: what autocontrast and equalize change most
        x = (x // 8 + 90).to(torch.uint8)
    return x


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    h=st.integers(1, 24),
    w=st.integers(1, 24),
    low=st.booleans(),
)
def test_uint8_equals_torchvision(seed: int, h: int, w: int, low: bool) -> None:
    x = _images(seed, 4, h, w, low)
    g = torch.Generator().manual_seed(seed + 1)
    bits = torch.randint(1, 9, (4,), generator=g)
    thr = torch.rand(4, generator=g)
    fac = torch.rand(4, generator=g) * 2
    post, sol, sharp = L.posterize(x, bits), L.solarize(x, thr), L.sharpness(x, fac)
    auto, eq, inv = L.autocontrast(x), L.equalize(x), L.invert(x)
    for i in range(4):
        assert torch.equal(inv[i], TF.invert(x[i]))
        assert torch.equal(post[i], TF.posterize(x[i], int(bits[i])))
        assert torch.equal(sol[i], TF.solarize(x[i], float(thr[i] * 255)))
        assert torch.equal(auto[i], TF.autocontrast(x[i]))
        assert torch.equal(eq[i], TF.equalize(x[i]))
        assert torch.equal(sharp[i], TF.adjust_sharpness(x[i], float(fac[i])))


def test_float_images_follow_the_same_definitions() -> None:
    x8 = _images(3, 2, 16, 12, True)
    xf = x8.float() / 255
    # posterize and equalize work on the 256 levels: a float image gives the uint8 result / 255
    assert torch.equal(L.posterize(xf, torch.tensor([3, 6])), L.posterize(x8, torch.tensor([3, 6])).float() / 255)
    assert torch.equal(L.equalize(xf), L.equalize(x8).float() / 255)
    # the rest are continuous: torchvision's float results
    thr = torch.tensor([0.3, 0.6])
    assert torch.equal(L.invert(xf), TF.invert(xf))
    for i in range(2):
        assert torch.allclose(L.solarize(xf, thr)[i], TF.solarize(xf[i], float(thr[i])))
        assert torch.allclose(L.autocontrast(xf)[i], TF.autocontrast(xf[i]), atol=1e-6)
        assert torch.allclose(L.sharpness(xf, torch.tensor([0.3, 1.7]))[i], TF.adjust_sharpness(xf[i], [0.3, 1.7][i]), atol=1e-6)
    # identities: 8 bits, factor 1, a flat image's autocontrast and equalize
    assert torch.equal(L.posterize(x8, torch.tensor([8, 8])), x8)
    assert torch.equal(L.sharpness(x8, torch.tensor([1.0, 1.0])), x8)
    flat = torch.full((1, 3, 5, 5), 77, dtype=torch.uint8)
    assert torch.equal(L.autocontrast(flat), flat) and torch.equal(L.equalize(flat), flat)


@pytest.mark.parametrize("name", ["posterize", "solarize", "invert", "autocontrast", "equalize", "sharpness"])
@pytest.mark.parametrize("channels", [1, 3])
def test_per_sample_and_batched_paths_agree(name: str, channels: int) -> None:
    """The per-sample path (OpenCV lookup tables) gives the batched kernels' results, uint8 and float."""
    pipe = Pipeline.from_dict([{"name": name}])
    x8 = _images(5, 3, 20, 20, True)[:, :channels].contiguous()
    for x in (x8, x8.float() / 255):
        out_b, trace = pipe(x, rng=torch.Generator().manual_seed(0), return_trace=True)
        for i in range(3):
            one = pipe.replay(np.ascontiguousarray(x[i].permute(1, 2, 0).numpy()), _row(trace, i))
            want = out_b[i].permute(1, 2, 0).numpy()
            assert one.dtype == want.dtype and one.shape == want.shape, name
            if name == "sharpness":  # OpenCV's filter sums in another order: a .5 may round the other way
                tol = 1 if x.dtype == torch.uint8 else 1e-6
                assert np.abs(one.astype(np.float64) - want.astype(np.float64)).max() <= tol
            else:
                assert np.array_equal(one, want), (name, x.dtype)


def _row(trace, i):  # type: ignore[no-untyped-def]
    from augmentgen.pipeline import Step, Trace

    return Trace(tuple(Step(s.path, s.leaf, s.params.select(np.array([i]))) for s in trace.steps))


def test_bad_settings_are_named() -> None:
    from augmentgen.ops.levels import Posterize, Sharpness, Solarize

    with pytest.raises(ValueError, match="Posterize.bits"):
        Posterize(bits=(0, 8))
    with pytest.raises(ValueError, match="Posterize.bits must be whole"):
        Posterize(bits=(2.5, 8))
    with pytest.raises(ValueError, match="Solarize.threshold"):
        Solarize(threshold=(0.5, 1.5))
    with pytest.raises(ValueError, match="Sharpness.factor"):
        Sharpness(factor=(-1, 2))
