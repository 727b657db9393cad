"""Weather and lighting ops: properties, golden values, backends agree, targets untouched."""

from __future__ import annotations

import dataclasses
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import augmentgen.ops  # noqa: F401
from augmentgen.core import OPS, Batch, Sample
from augmentgen.core.batch import Boxes
from augmentgen.core.params import Params
from augmentgen.core.rng import sample_rng
from augmentgen.data.photos import load_photo
from augmentgen.ops.functional import precipitation as fp
from augmentgen.ops.lighting import Jpeg, Night, SensorNoise, Shadow, SunFlare
from augmentgen.ops.weather import Fog, LensDroplets, Rain, Snow
from augmentgen.pipeline import Pipeline

# name -> (active kwargs, zero-magnitude kwargs or None when no magnitude is the identity)
WEATHER: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "fog": ({}, {"density": 0.0}),
    "rain": ({"density": (0.01, 0.03)}, {"density": 0.0, "darken": 0.0}),
    "snow": ({"density": (0.01, 0.03)}, {"density": 0.0, "whiten": 0.0}),
    "sun_flare": ({}, {"intensity": 0.0}),
    "shadow": ({"size": (0.3, 0.6)}, {"intensity": 0.0}),
    "night": ({}, {"brightness": 1.0, "gamma": 1.0, "blue": 0.0, "noise": 0.0}),
    "lens_droplets": ({"radius": (0.2, 0.4)}, {"count": 0.0}),
    "jpeg": ({"quality": (20, 60)}, None),
    "sensor_noise": ({}, {"shot": 0.0, "read": 0.0}),
}
NAMES = sorted(WEATHER)


def photo(h: int = 45, w: int = 80, c: int = 3, dtype: str = "uint8") -> np.ndarray:
    img = load_photo("stereo_motorcycle", (h, w))
    img = img if c == 3 else img[:, :, :1].copy()
    return img if dtype == "uint8" else img.astype(np.float32) / 255.0


def to_batch(imgs: list[np.ndarray]) -> Batch:
    return Batch(torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous())


def to_hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


def stack(rows: list[Params]) -> Params:
    """Per-sample params (one row each) stacked into one batch of params."""
    fields = {
        f.name: np.concatenate([np.asarray(getattr(r, f.name)) for r in rows])
        for f in dataclasses.fields(rows[0])
    }
    return type(rows[0])(**fields)


def test_all_weather_ops_are_registered_as_photometric() -> None:
    for name in NAMES:
        assert OPS.get(name).kind == "pixel"
    assert "motion_blur" in OPS


images = st.tuples(
    st.integers(1, 3),
    st.sampled_from([1, 3]),
    st.integers(2, 20),
    st.integers(2, 20),
    st.sampled_from(["uint8", "float32"]),
    st.integers(0, 2**31 - 1),
)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=8, deadline=None)
@given(spec=images)
def test_properties(name: str, spec: tuple[int, int, int, int, str, int]) -> None:
    b, c, h, w, dtype, seed = spec
    x = torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))
    x = (x * 255).round().to(torch.uint8) if dtype == "uint8" else x
    batch = Batch(x)
    active, zero = WEATHER[name]
    op = OPS.get(name)(**active)
    out = op.apply(batch, op.sample_params(batch, torch.Generator().manual_seed(seed))).image
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out.float()).all() and float(out.float().min()) >= 0.0
    assert float(out.float().max()) <= (255.0 if dtype == "uint8" else 1.0)
    again = op.apply(batch, op.sample_params(batch, torch.Generator().manual_seed(seed))).image
    assert torch.equal(out, again)  # same seed, same output
    off = OPS.get(name)(**active, p=0.0)
    assert torch.equal(off.apply(batch, off.sample_params(batch, torch.Generator())).image, x)
    s = Sample(x[0].permute(1, 2, 0).numpy().copy())
    assert np.array_equal(
        off.apply_sample(s, off.sample_params(s, np.random.default_rng(seed))).image, s.image
    )
    out_s = op.apply_sample(s, op.sample_params(s, np.random.default_rng(seed))).image
    assert out_s.shape == s.image.shape and out_s.dtype == s.image.dtype
    assert np.array_equal(out_s, op.apply_sample(s, op.sample_params(s, np.random.default_rng(seed))).image)
    if zero is not None:
        z = OPS.get(name)(**zero)
        assert torch.equal(z.apply(batch, z.sample_params(batch, torch.Generator().manual_seed(1))).image, x)
        assert np.array_equal(z.apply_sample(s, z.sample_params(s, np.random.default_rng(1))).image, s.image)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("channels", [1, 3])
def test_backends_agree(name: str, dtype: str, channels: int) -> None:
    img = photo(45, 80, channels, dtype)
    op = OPS.get(name)(**WEATHER[name][0])
    s = Sample(img)
    changed = 0.0
    for seed in range(3):
        params = op.sample_params(s, np.random.default_rng(seed))
        a = op.apply_sample(s, params).image
        b = to_hwc(op.apply(to_batch([img]), params.to_torch()).image[0])
        assert a.dtype == b.dtype and a.shape == b.shape
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        # uint8: a few pixels may round one or two levels apart (OpenCV's fixed-point resize)
        assert diff.max() <= (2.0 if dtype == "uint8" else 2e-4), (name, seed, diff.max())
        assert diff.mean() <= (0.1 if dtype == "uint8" else 1e-5)
        changed += float(np.abs(a.astype(np.float64) - img.astype(np.float64)).mean())
    assert changed > 0  # the op did something on at least one draw


@pytest.mark.parametrize("name", NAMES)
def test_each_sample_of_a_batch_equals_that_sample_alone(name: str) -> None:
    """Per-sample streams: row i of a batched call is the per-sample result of stream i."""
    op = OPS.get(name)(**WEATHER[name][0])
    imgs = [photo(36, 48), load_photo("astronaut", (36, 48)), load_photo("coffee", (36, 48))]
    rows = [op.sample_params(Sample(im), sample_rng(7, 0, i)) for i, im in enumerate(imgs)]
    out = op.apply(to_batch(imgs), stack(rows).to_torch()).image
    alone = [op.apply_sample(Sample(im), r).image for im, r in zip(imgs, rows)]
    for i in range(3):
        assert np.abs(to_hwc(out[i]).astype(int) - alone[i].astype(int)).max() <= 2, (name, i)
        one = op.apply(to_batch([imgs[i]]), rows[i].to_torch()).image[0]
        assert torch.equal(one, out[i])  # a row does not depend on the rest of the batch
    assert not np.array_equal(alone[0], imgs[0])


@pytest.mark.parametrize("name", NAMES)
def test_boxes_masks_and_labels_pass_through(name: str) -> None:
    img = photo(32, 40)
    boxes = np.array([[2.0, 3.0, 20.0, 18.0], [5.0, 5.0, 30.0, 31.0]], np.float32)
    masks = np.zeros((1, 32, 40), np.uint8)
    masks[0, 4:20, 3:25] = 1
    pipe = Pipeline([OPS.get(name)(**WEATHER[name][0])])
    out = pipe(
        {"image": img, "label": 2, "boxes": boxes, "box_labels": [1, 3], "masks": masks},
        rng=sample_rng(0, 0, 0),
    )
    assert np.array_equal(out["boxes"], boxes) and list(out["box_labels"]) == [1, 3]
    assert np.array_equal(out["masks"], masks) and out["label"] == 2
    bx = Boxes.from_list([torch.from_numpy(boxes)] * 2, [torch.tensor([1, 3])] * 2)
    batch = Batch(
        to_batch([img, img]).image.float() / 255,
        boxes=bx,
        masks=torch.from_numpy(masks)[None].repeat(2, 1, 1, 1),
    )
    res = pipe(batch, rng=torch.Generator().manual_seed(0))
    assert torch.equal(res.boxes.xyxy, bx.xyxy) and torch.equal(res.boxes.valid, bx.valid)
    assert torch.equal(res.masks, batch.masks) and not torch.equal(res.image, batch.image)


def test_rows_of_a_batch_get_different_textures() -> None:
    x = torch.full((2, 3, 40, 60), 0.4)
    for op in (Rain(density=0.02), Snow(), Fog(), Shadow(), SunFlare()):
        out = op.apply(Batch(x), op.sample_params(Batch(x), torch.Generator().manual_seed(3))).image
        assert not torch.equal(out[0], out[1]), type(op).__name__


# ---- golden values ---------------------------------------------------------------------
def test_fog_golden_uniform_haze() -> None:
    op = Fog(density=0.5, gradient=0.0, airlight=0.8, texture=0.0)
    img = np.full((8, 10, 3), 100, np.uint8)
    out = op.apply_sample(Sample(img), op.sample_params(Sample(img), np.random.default_rng(0))).image
    assert (out == round(0.5 * 100 + 0.5 * 0.8 * 255)).all()  # x (1 - t) + A t = 152


def test_fog_gradient_is_thicker_at_the_top() -> None:
    op = Fog(density=0.8, gradient=1.0, airlight=1.0, texture=0.0)
    img = np.zeros((60, 20, 3), np.uint8)
    out = op.apply_sample(Sample(img), op.sample_params(Sample(img), np.random.default_rng(0))).image
    rows = out[:, :, 0].mean(1)
    assert rows[0] > 190 and rows[-1] < 10 and (np.diff(rows) <= 0).all()


def test_rain_streak_pixels_follow_the_documented_rasterization() -> None:
    h, w, off, length, slope = 50, 60, 1234, 9, 0.25
    layer = fp.streak_layer_np(off, 1, length, slope, (h, w))
    u0, u1 = fp.ubank_np()[off], fp.ubank_np()[off + 1]
    m = int(np.ceil(length * slope))
    y0, x0 = int(np.floor(u0 * (h + length))) - length, int(np.floor(u1 * (w + 2 * m))) - m
    want = np.zeros((h, w), np.uint8)
    for j in range(length):
        y, x = y0 + j, x0 + int(np.rint(j * slope))
        if 0 <= y < h and 0 <= x < w:
            want[y, x] = 1
    assert np.array_equal(layer, want)
    t = fp.streak_layer(
        torch.tensor([off]),
        torch.tensor([1]),
        torch.tensor([length]),
        torch.tensor([slope]),
        (h, w),
        torch.device("cpu"),
    )
    assert np.array_equal(t[0, 0].numpy().astype(np.uint8), want)


def test_rain_density_and_length_scale_the_streaks() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    lit = []
    for dens in (0.002, 0.008):
        op = Rain(density=dens, length=0.1, angle=0.0, blur=0.0, brightness=1.0, darken=0.0)
        out = op.apply_sample(Sample(img), op.sample_params(Sample(img), np.random.default_rng(0))).image
        lit.append(int((out[:, :, 0] > 0).sum()))
        assert set(np.unique(out)) <= {0, 255}  # sharp streaks, full brightness
    # 20 vs 80 drops of 10 px (overlaps and borders cost a few)
    assert 120 <= lit[0] <= 200 and 600 <= lit[1] <= 800


def test_snow_whitens_and_adds_flakes() -> None:
    img = np.full((60, 80, 3), 50, np.uint8)
    op = Snow(whiten=0.5, density=0.01)
    out = op.apply_sample(Sample(img), op.sample_params(Sample(img), np.random.default_rng(0))).image
    assert np.median(out) == round(0.5 * 50 + 0.5 * 0.9 * 255)  # the scene between flakes
    assert out.max() == 255


def test_shadow_darkens_inside_and_keeps_outside() -> None:
    op = Shadow(num_shadows=1, intensity=0.5, size=0.2, roi=(0.5, 0.5, 0.5, 0.5))
    img = np.full((100, 100, 3), 200, np.uint8)
    out = op.apply_sample(Sample(img), op.sample_params(Sample(img), np.random.default_rng(0))).image
    assert (out[50, 50] == 100).all()  # the centre of the polygon: 200 * (1 - 0.5)
    assert (out[0, 0] == 200).all() and (out[99, 99] == 200).all()


def test_night_golden_tone_curve() -> None:
    op = Night(brightness=0.5, gamma=2.0, blue=0.5, noise=0.0)
    img = np.full((4, 4, 3), 200, np.uint8)
    out = op.apply_sample(Sample(img), op.sample_params(Sample(img), np.random.default_rng(0))).image
    base = 0.5 * (200 / 255) ** 2 * 255
    np.testing.assert_array_equal(out[0, 0], np.rint([base * 0.7, base * 0.85, base]).astype(np.uint8))


def test_sensor_noise_std_follows_the_poisson_gaussian_model() -> None:
    shot, read = 0.01, 0.02
    op = SensorNoise(shot=shot, read=read, chroma=0.5)
    for level in (0.2, 0.7):
        b = Batch(torch.full((2, 3, 96, 96), level))
        res = op.apply(b, op.sample_params(b, torch.Generator().manual_seed(0))).image - level
        assert abs(float(res.std()) / np.sqrt(shot * level + read**2) - 1.0) < 0.05


def test_jpeg_is_a_real_opencv_round_trip() -> None:
    img = photo(64, 96)
    op = Jpeg(quality=35)
    out = op.apply_sample(Sample(img), op.sample_params(Sample(img), np.random.default_rng(0))).image
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 35])
    assert ok
    assert np.array_equal(out, cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    errs = []
    for q in (10, 50, 95):
        o = Jpeg(quality=q)
        errs.append(
            np.abs(
                o.apply_sample(
                    Sample(img), o.sample_params(Sample(img), np.random.default_rng(0))
                ).image.astype(int)
                - img
            ).mean()
        )
    assert errs[0] > errs[1] > errs[2] > 0


def test_sun_flare_is_brightest_at_its_centre() -> None:
    op = SunFlare(x=0.25, y=0.25, intensity=1.0, num_ghosts=0)
    img = np.full((80, 120, 3), 60, np.uint8)
    out = op.apply_sample(Sample(img), op.sample_params(Sample(img), np.random.default_rng(0))).image
    assert (out[20, 30] >= 250).all() and out[79, 119].mean() < out[30, 40].mean()
    assert (out >= img).all()  # screen blending only adds light


def test_droplets_leave_the_rest_of_the_image_alone() -> None:
    op = LensDroplets(count=1, radius=0.1)
    img = photo(60, 80)
    p = op.sample_params(Sample(img), np.random.default_rng(0))
    out = op.apply_sample(Sample(img), p).image
    cx, cy = (np.asarray(p.centers)[0, 0] * [80, 60]).tolist()  # type: ignore[attr-defined]
    yy, xx = np.mgrid[:60, :80]
    far = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) > 0.1 * 60 + 4
    assert np.array_equal(out[far], img[far]) and not np.array_equal(out, img)


def test_gradients_flow_through_the_batched_kernels() -> None:
    x = torch.rand(2, 3, 24, 32, requires_grad=True)
    for name in NAMES:
        op = OPS.get(name)(**WEATHER[name][0])
        out = op.apply(Batch(x), op.sample_params(Batch(x), torch.Generator().manual_seed(0))).image
        (g,) = torch.autograd.grad(out.sum(), x)
        assert torch.isfinite(g).all() and g.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (Fog, {"density": 1.5}, "Fog.density"),
        (Rain, {"angle": (30, 10)}, "Rain.angle"),
        (Snow, {"size": 99}, "Snow.size"),
        (Shadow, {"roi": (0.5, 0.0, 0.2, 1.0)}, "Shadow.roi"),
        (Night, {"gamma": 0.5}, "Night.gamma"),
        (Jpeg, {"quality": (0, 50)}, "Jpeg.quality"),
        (LensDroplets, {"count": (1.5, 3)}, "LensDroplets.count"),
        (SunFlare, {"num_ghosts": 40}, "SunFlare.num_ghosts"),
    ],
)
def test_bad_hyperparameters_name_the_field(cls: type, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        cls(**kwargs)


@pytest.mark.parametrize("k", [1, 3, 5, 9, 11, 21])
def test_box_blur_equals_opencv_blur_for_small_and_large_boxes(k: int) -> None:
    from augmentgen.ops.functional import weather as fw

    img = np.random.default_rng(k).random((2, 30, 41)).astype(np.float32)
    got = fw.box_blur(torch.from_numpy(img)[:, None], torch.tensor([k, k]))[:, 0].numpy()
    for i in range(2):
        np.testing.assert_allclose(got[i], fw.box_blur_np(img[i], k), atol=1e-5)
    mixed = fw.box_blur(torch.from_numpy(img)[:, None], torch.tensor([1, k]))[:, 0].numpy()
    np.testing.assert_array_equal(mixed[0], img[0])  # per-sample sizes
    np.testing.assert_allclose(mixed[1], fw.box_blur_np(img[1], k), atol=1e-5)


def test_dilate_equals_opencv_dilate() -> None:
    from augmentgen.ops.functional import weather as fw

    layer = (np.random.default_rng(0).random((2, 25, 33)) < 0.05).astype(np.uint8)
    got = fw.dilate(torch.from_numpy(layer).float()[:, None], torch.tensor([3, 5]))[:, 0].numpy()
    for i, k in enumerate((3, 5)):
        want = cv2.dilate(layer[i], np.ones((k, k), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        np.testing.assert_array_equal(got[i].astype(np.uint8), want)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "jpeg"])  # JPEG codes the uint8 image
def test_float16_batches_match_float32(name: str) -> None:
    x = torch.rand(2, 3, 20, 30, generator=torch.Generator().manual_seed(0))
    op = OPS.get(name)(**WEATHER[name][0])
    p = op.sample_params(Batch(x), torch.Generator().manual_seed(0))
    half = op.apply(Batch(x.half()), p).image
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), op.apply(Batch(x), p).image, atol=3e-3, rtol=0)
