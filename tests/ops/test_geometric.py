"""Geometric ops: invariants (hypothesis), identity at zero magnitude, replay, serialization, references."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

from augmentgen.core import OPS, Batch, Boxes, Sample
from augmentgen.core.rng import torch_rng
from augmentgen.ops import crop as crop_mod
from augmentgen.ops.base import Op, op_from_dict
from augmentgen.ops.geometric import (
    Affine,
    CenterCrop,
    HorizontalFlip,
    Letterbox,
    LongestMaxSize,
    Pad,
    Perspective,
    RandomCrop,
    RandomResizedCrop,
    Resize,
    Rotate,
    Scale,
    Shear,
    SmallestMaxSize,
    Translate,
    VerticalFlip,
)

# one representative configuration per registered op (p=1 so that every row acts)
MAKE: dict[str, Callable[[], Op]] = {
    "rotate": lambda: Rotate(degrees=30),
    "scale": lambda: Scale(scale=(0.7, 1.3), border_mode="replicate"),
    "translate": lambda: Translate(translate=0.2, fill=0.5),
    "shear": lambda: Shear(shear_x=15, shear_y=10, border_mode="reflect"),
    "affine": lambda: Affine(degrees=20, translate=0.1, scale=(0.8, 1.2), shear_x=10, shear_y=5),
    "horizontal_flip": lambda: HorizontalFlip(p=1.0),
    "vertical_flip": lambda: VerticalFlip(p=1.0),
    "perspective": lambda: Perspective(distortion_scale=0.6),
    "random_crop": lambda: RandomCrop(size=(12, 10), padding=3),
    "center_crop": lambda: CenterCrop(size=(12, 10)),
    "random_resized_crop": lambda: RandomResizedCrop(size=(16, 16), interpolation="nearest"),
    "resize": lambda: Resize(size=(10, 14)),
    "pad": lambda: Pad(padding=(1, 2, 3, 4), border_mode="reflect"),
    "letterbox": lambda: Letterbox(size=(16, 20), fill=0.5),
    "longest_max_size": lambda: LongestMaxSize(max_size=20),
    "smallest_max_size": lambda: SmallestMaxSize(max_size=12),
}
NAMES = sorted(MAKE)


def zero_magnitude(name: str, size: tuple[int, int]) -> Op | None:
    """The op at zero magnitude for images of ``size``, or None when it has no such setting (flips)."""
    h, w = size
    return {
        "rotate": Rotate(degrees=(0, 0)),
        "scale": Scale(scale=(1, 1)),
        "translate": Translate(translate=0),
        "shear": Shear(shear_x=0, shear_y=0),
        "affine": Affine(),
        "perspective": Perspective(distortion_scale=0.0),
        "random_crop": RandomCrop(size=(h, w)),
        "center_crop": CenterCrop(size=(h, w)),
        "random_resized_crop": RandomResizedCrop(size=(h, w), scale=(1, 1), ratio=(w / h, w / h)),
        "resize": Resize(size=(h, w)),
        "pad": Pad(padding=0),
        "letterbox": Letterbox(size=(h, w)),
        "longest_max_size": LongestMaxSize(max_size=max(h, w)),
        "smallest_max_size": SmallestMaxSize(max_size=min(h, w)),
    }.get(name)


def make_sample(h: int, w: int, seed: int, dtype: str = "uint8") -> Sample:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (5, 5), 1.5)
    img = img.reshape(h, w, 3)
    image = (img * 255).round().astype(np.uint8) if dtype == "uint8" else img
    x0, y0 = rng.uniform(0, w / 2), rng.uniform(0, h / 2)
    boxes = np.array([[x0, y0, x0 + w / 3, y0 + h / 3], [0, 0, w, h]], np.float32)
    masks = (rng.random((1, h, w)) > 0.5).astype(np.uint8)
    return Sample(image, label=1, boxes=boxes, box_labels=np.array([3, 4]), masks=masks)


def make_batch(h: int, w: int, seed: int, dtype: str = "float32", n: int = 3) -> Batch:
    return Batch.cat([make_sample(h, w, seed + i, dtype).to_batch() for i in range(n)])


def check_boxes_inside(xyxy: np.ndarray, valid: np.ndarray | None, size: tuple[int, int]) -> None:
    h, w = size
    v = xyxy if valid is None else xyxy[valid]  # None: every box valid (an identity op returns its input)
    assert np.all(v[:, 0] >= 0) and np.all(v[:, 1] >= 0)
    assert np.all(v[:, 2] <= w + 1e-4) and np.all(v[:, 3] <= h + 1e-4)
    assert np.all(v[:, 2] - v[:, 0] >= 1 - 1e-4) and np.all(v[:, 3] - v[:, 1] >= 1 - 1e-4)


def test_every_registered_geometric_op_is_covered() -> None:
    registered = {name for name, cls in OPS.items() if getattr(cls, "kind", "") == "geometric"}
    assert registered == set(NAMES)


# ---- invariants --------------------------------------------------------------------------------
sizes = st.tuples(st.integers(8, 40), st.integers(8, 40))


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    size=sizes,
    seed=st.integers(0, 2**31),
    dtype=st.sampled_from(["uint8", "float32"]),
)
def test_sample_path_invariants(name: str, size: tuple[int, int], seed: int, dtype: str) -> None:
    op = MAKE[name]()
    s = make_sample(*size, seed, dtype)
    out = op.apply_sample(s, op.sample_params(s, np.random.default_rng(seed)))
    out_size = op.output_size(size)
    assert out.image.shape == (*out_size, 3) and out.image.dtype == s.image.dtype
    if dtype == "float32":
        assert out.image.min() >= -1e-6 and out.image.max() <= 1 + 1e-6
    assert out.masks.shape == (1, *out_size) and set(np.unique(out.masks).tolist()) <= {0, 1}
    assert out.box_labels.tolist() == [3, 4] and out.label == 1
    check_boxes_inside(out.boxes, out.box_valid, out_size)
    again = op.apply_sample(s, op.sample_params(s, np.random.default_rng(seed)))
    assert np.array_equal(again.image, out.image) and np.array_equal(again.boxes, out.boxes)


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    size=sizes,
    seed=st.integers(0, 2**31),
    dtype=st.sampled_from(["uint8", "float32"]),
)
def test_batch_path_invariants(name: str, size: tuple[int, int], seed: int, dtype: str) -> None:
    op = MAKE[name]()
    b = make_batch(*size, seed, dtype)
    params = op.sample_params(b, torch_rng(seed))
    assert all(isinstance(v, torch.Tensor) for v in params.fields().values())
    out = op.apply(b, params)
    out_size = op.output_size(size)
    assert out.image.shape == (3, 3, *out_size) and out.image.dtype == b.image.dtype
    if dtype == "float32":
        assert out.image.min() >= -1e-6 and out.image.max() <= 1 + 1e-6
    assert out.masks is not None and out.masks.shape == (3, 1, *out_size)
    assert out.boxes is not None and torch.equal(out.boxes.labels, b.boxes.labels)  # type: ignore[union-attr]
    check_boxes_inside(out.boxes.xyxy.numpy(), out.boxes.valid.numpy(), out_size)
    again = op.apply(b, op.sample_params(b, torch_rng(seed)))
    assert torch.equal(again.image, out.image)


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(NAMES), size=sizes, seed=st.integers(0, 2**31))
def test_zero_magnitude_and_p0_are_the_exact_identity(name: str, size: tuple[int, int], seed: int) -> None:
    s = make_sample(*size, seed, "float32")
    b = make_batch(*size, seed, "uint8")
    ops = [zero_magnitude(name, size)]
    if MAKE[name]().output_size(size) == size:
        base = MAKE[name]()
        base.p = 0.0
        ops.append(base)
    for op in [o for o in ops if o is not None]:
        out = op.apply_sample(s, op.sample_params(s, np.random.default_rng(seed)))
        assert np.array_equal(out.image, s.image) and np.array_equal(out.boxes, s.boxes)
        bo = op.apply(b, op.sample_params(b, torch_rng(seed)))
        assert torch.equal(bo.image, b.image) and torch.equal(bo.boxes.xyxy, b.boxes.xyxy)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", NAMES)
def test_backends_agree_on_the_same_params(name: str) -> None:
    op = MAKE[name]()
    s = make_sample(24, 28, seed=5)
    for params in (
        op.sample_params(s, np.random.default_rng(1)),
        op.sample_params(s.to_batch(), torch_rng(1)),
    ):
        cv = op.apply_sample(s, params.to_numpy())
        tb = op.apply(s.to_batch(), params.to_torch())
        diff = np.abs(Sample.from_batch(tb).image.astype(int) - cv.image.astype(int))
        assert diff.max() <= 4 and diff.mean() < 0.5, (name, diff.max(), diff.mean())
        np.testing.assert_allclose(tb.boxes.xyxy[0].numpy(), cv.boxes, atol=1e-3)  # type: ignore[union-attr]
        assert tb.boxes.valid[0].tolist() == cv.box_valid.tolist()  # type: ignore[union-attr]


# ---- replay, serialization, batch options ---------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_pickle_and_dict_round_trips_give_identical_output(name: str) -> None:
    op = MAKE[name]()
    s = make_sample(20, 18, seed=7)
    ref = op.apply_sample(s, op.sample_params(s, np.random.default_rng(3))).image
    for clone in (
        pickle.loads(pickle.dumps(op)),
        op_from_dict(op.to_dict()),
        type(op).from_dict(op.to_dict()),
    ):
        assert clone == op
        assert np.array_equal(
            clone.apply_sample(s, clone.sample_params(s, np.random.default_rng(3))).image, ref
        )
    b = make_batch(20, 18, seed=7)
    ref_b = op.apply(b, op.sample_params(b, torch_rng(3))).image
    clone = op_from_dict(op.to_dict())
    assert torch.equal(clone.apply(b, clone.sample_params(b, torch_rng(3))).image, ref_b)


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="angle"):
        op_from_dict({"name": "rotate", "angle": 3})


@pytest.mark.parametrize("name", ["rotate", "affine", "random_resized_crop", "perspective", "random_crop"])
def test_same_on_batch_uses_one_draw(name: str) -> None:
    op = MAKE[name]()
    op.same_on_batch = True
    b = make_batch(16, 16, seed=2, n=1)
    b = Batch.cat([b, b, b])
    out = op.apply(b, op.sample_params(b, torch_rng(0)))
    assert torch.equal(out.image[0], out.image[1]) and torch.equal(out.image[0], out.image[2])


def test_params_are_per_sample_and_respect_ranges() -> None:
    g = torch_rng(0)
    b = make_batch(16, 16, seed=0, n=64)
    p = Affine(degrees=(-5, 10), scale=(0.5, 0.6), translate=(0.1, 0.2), shear_x=3).sample_params(b, g)
    assert p.angle.shape == (64,) and float(p.angle.min()) >= -5 and float(p.angle.max()) <= 10  # type: ignore[attr-defined]
    assert float(p.scale.min()) >= 0.5 and float(p.scale.max()) <= 0.6  # type: ignore[attr-defined]
    assert float(p.ty.abs().max()) <= 0.2 and len(set(p.angle.tolist())) == 64  # type: ignore[attr-defined]
    half = HorizontalFlip(p=0.5).sample_params(b, g)
    assert 10 < int(half.applied.sum()) < 54


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Rotate(degrees=(10, -10)),
        lambda: Scale(scale=(0.0, 1.0)),
        lambda: Translate(translate=1.5),
        lambda: Translate(translate=((0.2, 0.1), (0.0, 0.0))),
        lambda: Translate(translate=((0.0, 1.5), (0.0, 0.0))),
        lambda: Affine(translate=((0.0, 0.1), (0.0, True))),
        lambda: Shear(shear_x=95),
        lambda: Perspective(distortion_scale=1.5),
        lambda: RandomCrop(size=0),
        lambda: Pad(padding=-1),
        lambda: RandomResizedCrop(size=8, ratio=(2.0, 1.0)),
        lambda: Rotate(border_mode="wrap"),
        lambda: Rotate(p=2.0),
    ],
)
def test_bad_hyperparameters_are_value_errors(bad: Callable[[], Op]) -> None:
    with pytest.raises(ValueError):
        bad()


def test_random_crop_larger_than_padded_image_is_an_error() -> None:
    op = RandomCrop(size=20, padding=1)
    with pytest.raises(ValueError, match="RandomCrop.size"):
        op.sample_params(make_sample(10, 10, 0), np.random.default_rng(0))


# ---- references -------------------------------------------------------------------------------
def test_flips_are_exact() -> None:
    s = make_sample(9, 13, seed=1)
    for op, axis in ((HorizontalFlip(p=1.0), 1), (VerticalFlip(p=1.0), 0)):
        out = op.apply_sample(s, op.sample_params(s, np.random.default_rng(0)))
        assert np.array_equal(out.image, np.flip(s.image, axis))
        b = s.to_batch()
        bo = op.apply(b, op.sample_params(b, torch_rng(0)))
        assert torch.equal(bo.image, b.image.flip(axis + 2))


def test_random_crop_and_pad_copy_pixels_exactly() -> None:
    s = make_sample(10, 12, seed=3)
    op = RandomCrop(size=(8, 9), padding=2, border_mode="reflect")
    params = op.sample_params(s, np.random.default_rng(4))
    x0, y0 = int(params.x0[0]), int(params.y0[0])  # type: ignore[attr-defined]
    padded = np.pad(s.image, ((2, 2), (2, 2), (0, 0)), mode="symmetric")
    expected = padded[y0 + 2 : y0 + 10, x0 + 2 : x0 + 11]
    assert np.array_equal(op.apply_sample(s, params).image, expected)
    bo = op.apply(s.to_batch(), params.to_torch())
    assert torch.equal(bo.image[0].permute(1, 2, 0), torch.from_numpy(expected))
    for mode, np_mode in (("constant", "constant"), ("reflect", "symmetric"), ("replicate", "edge")):
        pad = Pad(padding=(1, 2, 3, 4), border_mode=mode)
        out = pad.apply_sample(s, pad.sample_params(s, np.random.default_rng(0))).image
        assert np.array_equal(out, np.pad(s.image, ((2, 4), (1, 3), (0, 0)), mode=np_mode)), mode


def test_center_crop_equals_torchvision() -> None:
    s = make_sample(15, 20, seed=2)
    for size in [(7, 10), (15, 3), (20, 24)]:
        op = CenterCrop(size=size)
        out = op.apply_sample(s, op.sample_params(s, np.random.default_rng(0))).image
        ref = TF.center_crop(torch.from_numpy(s.image).permute(2, 0, 1), list(size)).permute(1, 2, 0).numpy()
        assert np.array_equal(out, ref), size


def test_resize_equals_opencv_and_torch_interpolate() -> None:
    s = make_sample(14, 18, seed=6, dtype="float32")
    op = Resize(size=(9, 25))
    out = op.apply_sample(s, op.sample_params(s, np.random.default_rng(0))).image
    np.testing.assert_allclose(out, cv2.resize(s.image, (25, 9), interpolation=cv2.INTER_LINEAR), atol=1e-5)
    b = s.to_batch()
    bo = op.apply(b, op.sample_params(b, torch_rng(0))).image
    ref = F.interpolate(b.image, size=(9, 25), mode="bilinear", align_corners=False, antialias=False)
    torch.testing.assert_close(bo, ref, atol=1e-5, rtol=0)


# ---- random resized crop sampling -----------------------------------------------------------------
def test_resized_crop_boxes_numpy_and_torch_agree() -> None:
    u = np.random.default_rng(0).random((500, 2 * crop_mod.RRC_TRIES + 2))
    for size, scale, ratio in [((30, 40), (0.08, 1.0), (0.75, 4 / 3)), ((10, 50), (0.5, 1.0), (0.9, 1.1))]:
        a = crop_mod.resized_crop_boxes_np(u, size, scale, ratio)
        b = crop_mod.resized_crop_boxes_torch(torch.from_numpy(u), size, scale, ratio)
        for x, y in zip(a, b, strict=True):
            assert np.array_equal(x, y.numpy())
        x0, y0, w, h = a
        assert np.all(x0 >= 0) and np.all(y0 >= 0) and np.all(x0 + w <= size[1]) and np.all(y0 + h <= size[0])


def test_resized_crop_follows_torchvision_ranges_and_fallback() -> None:
    u = np.random.default_rng(1).random((2000, 2 * crop_mod.RRC_TRIES + 2))
    x0, y0, w, h = crop_mod.resized_crop_boxes_np(u, (64, 64), (0.3, 0.6), (0.75, 4 / 3))
    area = w * h / 64**2
    assert area.min() > 0.3 - 0.05 and area.max() < 0.6 + 0.05  # integer rounding of w and h
    assert (w / h).min() > 0.75 - 0.1 and (w / h).max() < 4 / 3 + 0.1
    # no candidate fits a 4:1 image at ratio ~1 with 90% area: torchvision's clamped centre crop
    fx, fy, fw, fh = crop_mod.resized_crop_boxes_np(u[:3], (10, 40), (0.9, 1.0), (1.0, 1.0))
    assert (
        fw.tolist() == [10] * 3
        and fh.tolist() == [10] * 3
        and fx.tolist() == [15] * 3
        and fy.tolist() == [0] * 3
    )


def test_rotate_params_draw_on_the_generator_device() -> None:
    g = torch.Generator(device="cpu").manual_seed(0)
    p = Rotate().draw(5, (8, 8), g, torch.ones(5, dtype=torch.bool))
    assert isinstance(p.angle, torch.Tensor) and p.angle.device == g.device and p.angle.shape == (5,)
    m = Rotate().matrix(p, (8, 8))
    assert isinstance(m, torch.Tensor) and m.shape == (5, 3, 3)
    np.testing.assert_allclose(m.numpy(), Rotate().matrix(p.to_numpy(), (8, 8)), atol=1e-5)
    assert math.isclose(float(np.linalg.det(Rotate().matrix(p.to_numpy(), (8, 8))[0])), 1.0, rel_tol=1e-9)


def test_boxes_on_a_batch_keep_slots_when_dropped() -> None:
    boxes = Boxes.from_list(
        [torch.tensor([[0.0, 0.0, 3.0, 3.0], [5.0, 5.0, 9.0, 9.0]])] * 2, [torch.tensor([1, 2])] * 2
    )
    b = Batch(torch.rand(2, 3, 10, 10), boxes=boxes)
    op = CenterCrop(size=(4, 4))  # keeps 3..7: the first box shrinks to nothing
    out = op.apply(b, op.sample_params(b, torch_rng(0)))
    assert out.boxes is not None and out.boxes.valid.tolist() == [[False, True]] * 2
    assert out.boxes.labels.tolist() == [[1, 2]] * 2


@pytest.mark.parametrize(
    ("size", "scale", "ratio"),
    [((32, 32), (0.8, 1.0), (3 / 4, 4 / 3)), ((40, 90), (0.08, 1.0), (3 / 4, 4 / 3)), ((17, 5), (0.5, 1.0), (0.2, 5.0)), ((64, 64), (0.99, 1.0), (2.0, 3.0))],
)
def test_resized_crop_boxes_for_many_rows_equal_each_row_alone(
    size: tuple[int, int], scale: tuple[float, float], ratio: tuple[float, float]
) -> None:
    """The vectorized many-row path picks, for every row, the box the one-row loop picks (fallbacks included)."""
    from augmentgen.ops.crop import RRC_TRIES, resized_crop_boxes_np

    u = np.random.default_rng(1).random((300, 2 * RRC_TRIES + 2)).astype(np.float32)
    many = np.stack(resized_crop_boxes_np(u, size, scale, ratio), axis=1)
    alone = np.stack([np.concatenate(resized_crop_boxes_np(u[i : i + 1], size, scale, ratio)) for i in range(300)])
    assert many.dtype == np.int64 and np.array_equal(many, alone)
    assert (many[:, 2] <= size[1]).all() and (many[:, 3] <= size[0]).all() and (many[:, :2] >= 0).all()


def test_translate_takes_a_range_per_axis() -> None:
    """``((lo_x, hi_x), (lo_y, hi_y))``: a fixed shift moves every row by exactly that, a range draws within it."""
    img = np.zeros((8, 8, 1), np.uint8)
    img[:, 1] = 200
    right = Translate(translate=((0.25, 0.25), (0.0, 0.0)))  # 2 px right on 8 px, on both paths
    want = np.zeros_like(img)
    want[:, 3] = 200
    s = Sample(img)
    assert np.array_equal(right.apply_sample(s, right.sample_params(s, np.random.default_rng(0))).image, want)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float().repeat(5, 1, 1, 1) / 255
    out = right.apply(Batch(x), right.sample_params(Batch(x), torch_rng(0)))
    assert torch.allclose(out.image, torch.from_numpy(want).permute(2, 0, 1)[None].float() / 255)
    for op in (Translate(translate=((-0.1, 0.2), (0.05, 0.1))), Affine(translate=((-0.1, 0.2), (0.05, 0.1)))):
        prm = op.sample_params(Batch(torch.zeros(400, 1, 4, 4)), torch_rng(1))
        tx, ty = prm.tx, prm.ty  # type: ignore[attr-defined]
        assert -0.1 <= float(tx.min()) < -0.08 and 0.18 < float(tx.max()) <= 0.2
        assert 0.05 <= float(ty.min()) < 0.06 and 0.09 < float(ty.max()) <= 0.1
        again = op_from_dict(op.to_dict())
        assert again.to_dict() == op.to_dict() and op.to_dict()["translate"] == [[-0.1, 0.2], [0.05, 0.1]]
    assert Translate(translate=0.1).translate == (0.1, 0.1)  # the symmetric forms are as they were
