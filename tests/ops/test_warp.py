"""The shared warp: golden values against OpenCV and torchvision, both backends, targets, identity."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torchvision.transforms import InterpolationMode

from augmentgen.core import Batch, Boxes, Sample
from augmentgen.ops.functional import matrices as M
from augmentgen.ops.functional import warp_cv
from augmentgen.ops.functional.warp import WarpSpec, resize_matrix, warp_batch, warp_sample


def smooth_image(h: int, w: int, seed: int = 0, c: int = 3) -> np.ndarray:
    """A float32 HWC image in [0, 1] without sharp edges (interpolation errors stay small)."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w, c)).astype(np.float32), (7, 7), 2.0)
    img = (img - img.min()) / (img.max() - img.min())
    return img.reshape(h, w, c)


def to_batch(img: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]


EYE = np.eye(3)


def test_sample_fields_are_the_ones_warp_sample_rebuilds() -> None:
    # warp_sample rebuilds Sample positionally on its hot path; a new field must be added there too
    names = [f.name for f in dataclasses.fields(Sample)]
    assert names == ["image", "label", "boxes", "box_valid", "box_labels", "masks", "keypoints", "meta"]


def test_warp_spec_rejects_unknown_modes() -> None:
    with pytest.raises(ValueError, match="border_mode"):
        WarpSpec(border_mode="wrap")
    with pytest.raises(ValueError, match="interpolation"):
        WarpSpec(interpolation="cubic")


def test_resize_matrix_numpy_and_torch() -> None:
    m_np = resize_matrix((10, 20), (5, 40), like=np.zeros(1), n=2)
    m_t = resize_matrix((10, 20), (5, 40), like=torch.zeros(1, dtype=torch.float64), n=2)
    assert m_np.shape == (2, 3, 3) and m_np.dtype == np.float64
    assert isinstance(m_t, Tensor) and m_t.dtype == torch.float64
    np.testing.assert_array_equal(m_np[1], [[2.0, 0, 0], [0, 0.5, 0], [0, 0, 1]])
    np.testing.assert_array_equal(m_t.numpy(), m_np)


# ---- identity -----------------------------------------------------------------------------------
def test_identity_rows_are_bit_identical_and_others_change() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 3, 12, 10, generator=g)
    boxes = Boxes.from_list([torch.tensor([[-3.0, 1.0, 5.0, 20.0]])] * 3, [torch.tensor([7])] * 3)
    masks = torch.randint(0, 3, (3, 2, 12, 10), generator=g, dtype=torch.uint8)
    kp = torch.rand(3, 4, 2, generator=g) * 10
    b = Batch(img, boxes=boxes, masks=masks, keypoints=kp)
    m = torch.eye(3).repeat(3, 1, 1)
    m[1] = torch.as_tensor(M.affine_matrix((12, 10), angle=np.array([5.0]))[0])
    out = warp_batch(b, m, (12, 10), WarpSpec())
    for i in (0, 2):
        assert torch.equal(out.image[i], img[i]) and torch.equal(out.masks[i], masks[i])
        assert torch.equal(out.boxes.xyxy[i], boxes.xyxy[i]) and torch.equal(out.keypoints[i], kp[i])
    assert not torch.allclose(out.image[1], img[1])
    assert out.boxes.xyxy[1, 0, 0] >= 0  # the non-identity row is clipped to the canvas
    assert warp_batch(b, torch.eye(3).repeat(3, 1, 1), (12, 10), WarpSpec()) is b


def test_identity_sample_is_returned_untouched() -> None:
    s = Sample(np.zeros((6, 7, 3), np.uint8), boxes=np.array([[-1, -1, 9, 9]], np.float32))
    assert warp_sample(s, EYE, (6, 7), WarpSpec()) is s
    assert warp_sample(s, EYE, (6, 8), WarpSpec()).image.shape == (6, 8, 3)


# ---- golden values ------------------------------------------------------------------------------
@pytest.mark.parametrize("angle", [17.0, -90.0, 133.0])
def test_rotation_equals_opencv_and_torchvision(angle: float) -> None:
    h, w = 21, 26
    img = smooth_image(h, w)
    m = M.affine_matrix((h, w), angle=np.array([angle]))[0]
    ref_m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)  # OpenCV: centres on integers
    ref_cv = cv2.warpAffine(img, ref_m, (w, h))
    ours_cv = warp_sample(Sample(img), m, (h, w), WarpSpec()).image
    np.testing.assert_allclose(ours_cv, ref_cv, atol=1e-6)
    u8 = (img * 255).round().astype(np.uint8)
    ours_u8 = warp_sample(Sample(u8), m, (h, w), WarpSpec()).image
    assert np.abs(ours_u8.astype(int) - cv2.warpAffine(u8, ref_m, (w, h)).astype(int)).max() <= 1
    t = to_batch(img)
    ours_t = warp_batch(Batch(t), torch.as_tensor(m)[None], (h, w), WarpSpec()).image
    ref_t = TF.rotate(t, angle, interpolation=InterpolationMode.BILINEAR)
    torch.testing.assert_close(ours_t, ref_t, atol=1e-5, rtol=0)


def test_affine_equals_torchvision_affine() -> None:
    # torchvision's F.affine turns clockwise and shears with the opposite sign
    h, w = 24, 20
    t = to_batch(smooth_image(h, w, seed=1))
    m = M.affine_matrix(
        (h, w), angle=np.array([12.0]), scale=np.array([1.15]), tx=np.array([3 / w]), ty=np.array([-2 / h])
    )
    ours = warp_batch(Batch(t), torch.as_tensor(m), (h, w), WarpSpec()).image
    ref = TF.affine(
        t,
        angle=-12.0,
        translate=[3, -2],
        scale=1.15,
        shear=[0.0, 0.0],
        interpolation=InterpolationMode.BILINEAR,
    )
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    for sx, sy in [(9.0, 0.0), (0.0, -7.0)]:
        m = M.affine_matrix((h, w), shear_x=np.array([sx]), shear_y=np.array([sy]))
        ours = warp_batch(Batch(t), torch.as_tensor(m), (h, w), WarpSpec()).image
        ref = TF.affine(
            t,
            angle=0.0,
            translate=[0, 0],
            scale=1.0,
            shear=[-sx, -sy],
            interpolation=InterpolationMode.BILINEAR,
        )
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_box_rotated_90_degrees_lands_where_geometry_says() -> None:
    # 90 degrees counter-clockwise on a 16x16 canvas: (x, y) -> (y, 16 - x)
    m = M.affine_matrix((16, 16), angle=np.array([90.0]))[0]
    np.testing.assert_allclose(m, [[0, 1, 0], [-1, 0, 16], [0, 0, 1]], atol=1e-12)
    img = np.zeros((16, 16, 1), np.uint8)
    img[4:8, 2:6] = 255  # rows y 4..8, columns x 2..6 = box (2, 4, 6, 8)
    s = Sample(img, boxes=np.array([[2, 4, 6, 8]], np.float32), box_labels=np.array([3]))
    out = warp_sample(s, m, (16, 16), WarpSpec(interpolation="nearest"))
    np.testing.assert_allclose(out.boxes, [[4, 10, 8, 14]], atol=1e-5)
    assert out.box_valid.tolist() == [True] and out.box_labels.tolist() == [3]
    ys, xs = np.nonzero(out.image[..., 0])
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (4, 10, 8, 14)
    b = warp_batch(s.to_batch(), torch.as_tensor(m)[None], (16, 16), WarpSpec(interpolation="nearest"))
    torch.testing.assert_close(b.boxes.xyxy[0], torch.tensor([[4.0, 10.0, 8.0, 14.0]]), atol=1e-5, rtol=0)
    assert torch.equal(b.image[0, 0], torch.from_numpy(out.image[..., 0]))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
def test_border_modes_agree_between_backends(mode: str) -> None:
    h, w = 10, 12
    img = smooth_image(h, w, seed=2)
    # big shift + rotation: most of the output comes from the border rule
    m = M.affine_matrix((h, w), angle=np.array([30.0]), tx=np.array([0.45]), ty=np.array([-0.3]))[0]
    spec = WarpSpec(border_mode=mode, fill=0.25)
    ours_cv = warp_sample(Sample(img), m, (h, w), spec).image
    ours_t = warp_batch(Batch(to_batch(img)), torch.as_tensor(m)[None], (h, w), spec).image
    np.testing.assert_allclose(ours_t[0].permute(1, 2, 0).numpy(), ours_cv, atol=2e-3)


def test_reflect_is_opencv_border_reflect_not_reflect101() -> None:
    img = np.arange(20, dtype=np.float32).reshape(4, 5, 1) / 20
    shift = np.array([[1.0, 0, 3], [0, 1, 2], [0, 0, 1]])  # integer shift: pure border copying
    out_t = warp_batch(
        Batch(to_batch(img)), torch.as_tensor(shift)[None], (4, 5), WarpSpec(border_mode="reflect")
    )
    got = out_t.image[0, 0].numpy()
    expected = np.pad(img[..., 0], ((2, 0), (3, 0)), mode="symmetric")[:4, :5]  # symmetric = BORDER_REFLECT
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, np.pad(img[..., 0], ((2, 0), (3, 0)), mode="reflect")[:4, :5])
    out_cv = warp_sample(Sample(img), shift, (4, 5), WarpSpec(border_mode="reflect")).image
    np.testing.assert_allclose(out_cv[..., 0], expected, atol=1e-6)


def test_constant_fill_uint8_and_float() -> None:
    shift = np.array([[1.0, 0, 2], [0, 1, 0], [0, 0, 1]])
    u8 = np.full((4, 4, 3), 10, np.uint8)
    spec = WarpSpec(fill=0.5)
    assert warp_sample(Sample(u8), shift, (4, 4), spec).image[:, :2].tolist() == [[[128] * 3] * 2] * 4
    bt = warp_batch(Batch(to_batch(u8)), torch.as_tensor(shift)[None], (4, 4), spec).image
    assert bt.dtype == torch.uint8 and bt[0, :, :, :2].unique().tolist() == [128]
    assert bt[0, :, :, 2:].unique().tolist() == [10]
    bf = warp_batch(
        Batch(to_batch(u8.astype(np.float32) / 255)), torch.as_tensor(shift)[None], (4, 4), spec
    ).image
    torch.testing.assert_close(bf[0, :, :, :2], torch.full((3, 4, 2), 0.5))


# ---- both backends, fusion ------------------------------------------------------------------------
def random_matrices(size: tuple[int, int]) -> list[np.ndarray]:
    return [
        M.affine_matrix(
            size, angle=np.array([21.0]), scale=np.array([0.9]), shear_x=np.array([6.0]), tx=np.array([0.05])
        )[0],
        M.perspective_matrix(size, np.array([[[0.1, 0.05], [0.0, 0.12], [0.08, 0.0], [0.02, 0.1]]]))[0],
        M.crop_matrix(np.array([3.0]), 2.0, 17.0, 13.0, (20, 30))[0],
    ]


@pytest.mark.parametrize("k", [0, 1, 2])
def test_backends_agree_uint8(k: int) -> None:
    h, w = 28, 32
    u8 = (smooth_image(h, w, seed=3) * 255).round().astype(np.uint8)
    m = random_matrices((h, w))[k]
    out_size = (20, 30) if k == 2 else (h, w)
    cvo = warp_sample(Sample(u8), m, out_size, WarpSpec()).image.astype(int)
    to = warp_batch(Batch(to_batch(u8)), torch.as_tensor(m)[None], out_size, WarpSpec()).image
    diff = np.abs(to[0].permute(1, 2, 0).numpy().astype(int) - cvo)
    # OpenCV quantizes coordinates to 1/32 px and weights to 15 bits; grid_sample is exact
    assert diff.max() <= 3 and diff.mean() < 0.3


def test_fused_warp_equals_sequence_of_warps() -> None:
    h, w = 40, 40
    img = smooth_image(h, w, seed=4)
    m1 = M.affine_matrix((h, w), angle=np.array([12.0]))[0]
    m2 = M.affine_matrix((h, w), scale=np.array([1.1]), tx=np.array([0.03]))[0]
    m3 = M.crop_matrix(np.array([4.0]), 6.0, 30.0, 28.0, (32, 32))[0]
    seq = warp_sample(Sample(img), m1, (h, w), WarpSpec())
    seq = warp_sample(seq, m2, (h, w), WarpSpec())
    seq = warp_sample(seq, m3, (32, 32), WarpSpec())
    fused = warp_sample(Sample(img), m3 @ m2 @ m1, (32, 32), WarpSpec())
    inner = (slice(8, -8), slice(8, -8))  # away from the zero-filled corners of the first warp
    # three bilinear passes blur more than one: a tolerance of interpolation size, tight on average
    diff = np.abs(fused.image[inner] - seq.image[inner])
    assert diff.max() < 0.05 and diff.mean() < 0.01
    tb = warp_batch(Batch(to_batch(img)), torch.as_tensor(m3 @ m2 @ m1)[None], (32, 32), WarpSpec())
    np.testing.assert_allclose(tb.image[0].permute(1, 2, 0).numpy(), fused.image, atol=1e-4)


# ---- torch specifics ----------------------------------------------------------------------------
def test_gradient_flows_to_the_image() -> None:
    x = torch.rand(2, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    m = torch.as_tensor(M.affine_matrix((5, 6), angle=np.array([10.0, -25.0]), scale=np.array([1.1, 0.9])))

    def f(img: Tensor) -> Tensor:
        return warp_batch(Batch(img), m, (5, 6), WarpSpec(fill=0.3)).image

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-5)


def test_float16_runs_and_matches_float32() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 16, 16, generator=g)
    m = torch.as_tensor(M.affine_matrix((16, 16), angle=np.array([15.0, 40.0])), dtype=torch.float32)
    out16 = warp_batch(Batch(x.half()), m, (12, 20), WarpSpec()).image
    out32 = warp_batch(Batch(x), m, (12, 20), WarpSpec()).image
    assert out16.dtype == torch.float16 and out16.shape == (2, 3, 12, 20)
    torch.testing.assert_close(out16.float(), out32, atol=1e-3, rtol=0)  # half rounding only


def test_masks_nearest_and_keypoints() -> None:
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[0, 2:4, 2:6] = 1
    masks[1, 5:8, 0:3] = 7
    m = M.flip_matrix((8, 8), horizontal=True, like=np.zeros(1), n=1)[0]
    s = Sample(np.zeros((8, 8, 3), np.uint8), masks=masks, keypoints=np.array([[1.5, 2.5]], np.float32))
    out = warp_sample(s, m, (8, 8), WarpSpec())
    np.testing.assert_array_equal(out.masks, masks[:, :, ::-1])
    np.testing.assert_allclose(out.keypoints, [[6.5, 2.5]])
    bt = warp_batch(s.to_batch(), torch.as_tensor(m)[None], (8, 8), WarpSpec())
    np.testing.assert_array_equal(bt.masks[0].numpy(), masks[:, :, ::-1])
    torch.testing.assert_close(bt.keypoints[0], torch.tensor([[6.5, 2.5]]))
    rot = M.affine_matrix((8, 8), angle=np.array([33.0]))[0]
    for out_m in (
        warp_sample(s, rot, (8, 8), WarpSpec()).masks,
        warp_batch(s.to_batch(), torch.as_tensor(rot)[None], (8, 8), WarpSpec()).masks[0].numpy(),
    ):
        assert set(np.unique(out_m).tolist()) <= {0, 1, 7}  # nearest: no blended labels
    many = np.zeros((6, 8, 8), bool)
    many[5, 0, 0] = True
    out6 = warp_sample(Sample(np.zeros((8, 8, 3), np.uint8), masks=many), m, (8, 8), WarpSpec()).masks
    assert out6.dtype == bool and out6.shape == (6, 8, 8) and out6[5, 0, 7]


def test_boxes_outside_become_invalid_and_keep_labels() -> None:
    xyxy = torch.tensor([[[1.0, 1.0, 5.0, 5.0], [10.0, 10.0, 14.0, 14.0], [2.0, 2.0, 3.0, 8.0]]])
    boxes = Boxes(xyxy, torch.tensor([[True, True, True]]), torch.tensor([[4, 5, 6]]))
    shift = torch.tensor([[[1.0, 0, 4], [0, 1, 0], [0, 0, 1]]])  # 4 px right on a 12 x 16 canvas
    out = warp_batch(
        Batch(torch.rand(1, 3, 16, 12), boxes=boxes), shift, (16, 12), WarpSpec(min_visibility=0.5)
    )
    assert out.boxes.valid.tolist() == [[True, False, True]]  # box 2 keeps 0 of 4 px in width
    assert out.boxes.labels.tolist() == [[4, 5, 6]]
    assert float(out.boxes.xyxy[..., 0::2].max()) <= 12 and float(out.boxes.xyxy.min()) >= 0
    s = Sample(np.zeros((16, 12, 3), np.uint8), boxes=xyxy[0].numpy(), box_labels=np.array([4, 5, 6]))
    so = warp_sample(s, shift[0].numpy(), (16, 12), WarpSpec(min_visibility=0.5))
    assert so.box_valid.tolist() == [True, False, True]
    np.testing.assert_allclose(so.boxes, out.boxes.xyxy[0].numpy(), atol=1e-5)
    half = torch.tensor([[[1.0, 0, 9], [0, 1, 0], [0, 0, 1]]])  # box 0 spans x 10..14: half visible
    assert (
        warp_batch(Batch(torch.rand(1, 3, 16, 12), boxes=boxes), half, (16, 12), WarpSpec(min_visibility=0.6))
        .boxes.valid[0, 0]
        .item()
        is False
    )


def test_single_channel_and_bool_masks_keep_their_form() -> None:
    m = M.affine_matrix((9, 9), angle=np.array([40.0]))[0]
    gray = np.random.default_rng(0).integers(0, 255, (9, 9, 1), dtype=np.uint8)
    assert warp_sample(Sample(gray), m, (7, 11), WarpSpec()).image.shape == (7, 11, 1)
    assert warp_sample(Sample(gray[..., 0]), m, (7, 11), WarpSpec()).image.shape == (7, 11)
    masks = torch.zeros(1, 2, 9, 9, dtype=torch.bool)
    masks[0, 1, 3:6, 3:6] = True
    out = warp_batch(Batch(torch.rand(1, 1, 9, 9), masks=masks), torch.as_tensor(m)[None], (9, 9), WarpSpec())
    assert out.masks is not None and out.masks.dtype == torch.bool and out.masks[0, 1].any()
    assert not out.masks[0, 0].any()


def test_bad_matrix_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"\[B, 3, 3\]"):
        warp_batch(Batch(torch.rand(2, 3, 4, 4)), torch.eye(3)[None], (4, 4), WarpSpec())
    with pytest.raises(ValueError, match=r"\[3, 3\]"):
        warp_sample(Sample(np.zeros((4, 4, 3), np.uint8)), np.eye(2), (4, 4), WarpSpec())
    with pytest.raises(TypeError, match="int8"):
        warp_sample(Sample(np.zeros((4, 4, 3), np.int8)), np.diag([2.0, 1.0, 1.0]), (4, 4), WarpSpec())


def test_cv_matrix_perspective_branch() -> None:
    m = M.perspective_matrix((10, 10), np.array([[[0.1, 0.1], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]]))[0]
    cvm, affine = warp_cv.cv_matrix(m.tolist())
    assert not affine and cvm.shape == (3, 3)
    shift = np.array([[1.0, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    np.testing.assert_allclose(cvm, shift @ m @ np.linalg.inv(shift))


def test_empty_targets_pass_through() -> None:
    m = M.affine_matrix((8, 8), angle=np.array([20.0, -20.0]))
    empty = Boxes(
        torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.bool), torch.zeros(2, 0, dtype=torch.int64)
    )
    b = warp_batch(
        Batch(torch.rand(2, 3, 8, 8), boxes=empty, keypoints=torch.zeros(2, 0, 2)),
        torch.as_tensor(m),
        (6, 8),
        WarpSpec(),
    )
    assert b.boxes is not None and b.boxes.xyxy.shape == (2, 0, 4) and b.keypoints is not None
    s = Sample(
        np.zeros((8, 8, 3), np.uint8),
        boxes=np.zeros((0, 4), np.float32),
        keypoints=np.zeros((0, 2), np.float32),
        masks=np.zeros((0, 8, 8), np.uint8),
    )
    o = warp_sample(s, m[0], (6, 8), WarpSpec())
    assert o.boxes.shape == (0, 4) and o.box_valid.shape == (0,) and o.masks.shape == (0, 6, 8)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("affine", [True, False])
def test_rgba_fast_path_is_bit_identical_to_the_three_channel_warp(dtype: type, affine: bool) -> None:
    """``cv_warp`` pads large RGB images to RGBA (OpenCV's SIMD remap): the RGB result must not change."""
    rng = np.random.default_rng(3)
    flags = (cv2.INTER_LINEAR, cv2.INTER_NEAREST)
    borders = (cv2.BORDER_CONSTANT, cv2.BORDER_REFLECT, cv2.BORDER_REPLICATE)
    for trial in range(12):
        h, w = (int(v) for v in rng.integers(64, 140, 2))
        img = (rng.random((h, w, 3)) * (255 if dtype == np.uint8 else 1)).astype(dtype)
        m = np.eye(3)
        m[:2] += rng.normal(0, 0.15, (2, 3))
        m[:2, 2] = rng.normal(0, 6, 2)
        if not affine:
            m[2, :2] = rng.normal(0, 1e-3, 2)
        cvm = m[:2] if affine else m
        fl, bd = flags[trial % 2], borders[trial % 3]
        dsize = (w + 7, h - 3)
        got = warp_cv.cv_warp(img, cvm, affine, dsize, fl, bd, 0.4)
        ref_fn = cv2.warpAffine if affine else cv2.warpPerspective
        ref = ref_fn(img, cvm, dsize, flags=fl, borderMode=bd, borderValue=(0.4, 0.4, 0.4, 0.4))
        assert got.shape == ref.shape == (h - 3, w + 7, 3) and got.dtype == img.dtype
        assert np.array_equal(got, ref), (trial, fl, bd)
    small = (rng.random((20, 20, 3)) * 255).astype(np.uint8)  # below the threshold: plain call, same result
    assert np.array_equal(
        warp_cv.cv_warp(small, np.eye(3)[:2], True, (20, 20), cv2.INTER_LINEAR, cv2.BORDER_REFLECT, 0.0), small
    )


def test_many_row_matrices_have_the_bits_of_one_row_builds() -> None:
    """``matrices.build`` over ``[B]`` numpy columns equals stacking B one-row builds, bit for bit."""
    rng = np.random.default_rng(8)
    n = 33
    angle, scale = rng.uniform(-40, 40, n), rng.uniform(0.5, 1.5, n)
    shx, shy, tx = rng.uniform(-20, 20, n), rng.uniform(-20, 20, n), rng.uniform(-0.2, 0.2, n)
    x0, y0 = rng.integers(0, 9, n), rng.uniform(0, 5, n).astype(np.float32)
    quad = rng.uniform(-3, 3, (8, n))
    cases = [
        (M.affine_entries, [angle, scale, shx, shy, tx, 0.0], (40.0, 30.0)),
        (M.crop_entries, [x0, y0, 17.0, rng.uniform(5, 20, n)], (32.0, 32.0)),
        (M.quad_entries, [quad[0], quad[1], 40 + quad[2], quad[3], 40 + quad[4], 30 + quad[5], quad[6], 30 + quad[7]], (40.0, 30.0)),
    ]
    for formula, args, consts in cases:
        many = M.build(formula, args, *consts)
        assert isinstance(many, np.ndarray) and many.shape == (n, 3, 3) and many.dtype == np.float64
        for i in range(n):
            row = [a if isinstance(a, float) else np.asarray(a)[i : i + 1] for a in args]
            one = M.build(formula, row, *consts)
            assert np.array_equal(many[i], one[0]), (formula.__name__, i)


@pytest.mark.parametrize("flip", ["identity", "left-right", "up-down", "both"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("channels", [None, 1, 3, 4])
@pytest.mark.parametrize("hw", [(5, 7), (96, 80)])  # the second is warped as RGBA when it is a real warp
def test_a_warp_that_only_flips_is_cv2_flip_bit_for_bit(flip: str, dtype: type, channels: int | None, hw: tuple[int, int]) -> None:
    from augmentgen.ops.functional.warp_cv import _BORDER, _INTERP, _flip_code, cv_warp

    h, w = hw
    rng = np.random.default_rng(3)
    shape = (h, w) if channels is None else (h, w, channels)
    image = (rng.integers(0, 256, shape) if dtype == np.uint8 else rng.random(shape)).astype(dtype)
    sx, sy = {"identity": (1, 1), "left-right": (-1, 1), "up-down": (1, -1), "both": (-1, -1)}[flip]
    cvm = np.array([[sx, 0.0, (w - 1) * (sx < 0)], [0.0, sy, (h - 1) * (sy < 0)]])
    assert _flip_code(cvm.tolist(), (w, h)) is not None
    for interp, border in [("bilinear", "constant"), ("nearest", "reflect"), ("bilinear", "replicate")]:
        flags, bmode = _INTERP[interp], _BORDER[border]
        got = cv_warp(image, cvm, True, (w, h), flags, bmode, 0.5)
        want = cv2.warpAffine(image, cvm, (w, h), flags=flags, borderMode=bmode, borderValue=(0.5,) * 4)
        want = want.reshape(got.shape)
        assert got.dtype == image.dtype and got.shape == image.shape and np.array_equal(got, want), interp
        assert not np.shares_memory(got, image)
    # a half-pixel shift or a transpose is a real warp; so is any matrix into another output size
    for m in ([[-1.0, 0.0, w - 1.5], [0.0, 1.0, 0.0]], [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]):
        assert _flip_code(m, (w, h)) is None
    flags, bmode = _INTERP["bilinear"], _BORDER["constant"]
    got = cv_warp(image, cvm, True, (w + 1, h), flags, bmode, 0.5)
    want = cv2.warpAffine(image, cvm, (w + 1, h), flags=flags, borderMode=bmode, borderValue=(0.5,) * 4)
    assert np.array_equal(got, want.reshape(got.shape))


def test_a_warp_onto_whole_pixels_replicates_the_edge_inside_and_fills_outside() -> None:
    """Scale 0.5 about the centre of a 16 px image: the content lands on pixels 4..11 exactly."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    up = np.array([[3.0, 0.0, 5.0], [0.0, 3.0, 2.0], [0.0, 0.0, 1.0]])  # 16 -> 48 px at (5, 2): whole pixels
    for m, size, box in (
        (M.affine_matrix((16, 16), scale=np.array([0.5], np.float32))[0], (16, 16), (4, 4, 12, 12)),
        (up, (60, 56), (5, 2, 53, 50)),
    ):
        m = np.asarray(m, np.float64)
        cvm, _ = warp_cv.cv_matrix(m.tolist())
        assert warp_cv.aligned_box(cvm, (16, 16), (size[1], size[0])) == box
        spec = WarpSpec(fill=0.25)
        out = warp_sample(Sample(img), m, size, spec).image
        x0, y0, x1, y1 = box
        inside = np.zeros(size, bool)
        inside[y0:y1, x0:x1] = True
        assert (out[~inside] == 64).all()  # rint(0.25 * 255): no content blended into the fill
        ref = cv2.resize(img, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        assert np.abs(out[y0:y1, x0:x1].astype(int) - ref.astype(int)).max() <= 1  # a resize, edge replicated
        batch = Batch(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)
        tout = warp_batch(batch, torch.from_numpy(m)[None].float(), size, spec).image[0].permute(1, 2, 0).numpy()
        assert np.allclose(tout[~inside], 0.25, atol=1e-6) and np.abs(tout * 255 - out).max() <= 1.0


def test_warps_off_whole_pixels_keep_the_blended_border() -> None:
    """A rotation or a shift by a fraction of a pixel is not a resize-and-pad: OpenCV's constant border as before."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    for m in (
        M.affine_matrix((12, 12), angle=np.array([20.0], np.float32))[0],
        M.affine_matrix((12, 12), tx=np.array([0.03], np.float32))[0],
    ):
        m = np.asarray(m, np.float64)
        cvm, _ = warp_cv.cv_matrix(m.tolist())
        assert warp_cv.aligned_box(cvm, (12, 12), (12, 12)) is None
        out = warp_sample(Sample(img), m, (12, 12), WarpSpec(fill=0.5)).image
        plain = cv2.warpAffine(img, cvm, (12, 12), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(127.5,) * 4)
        assert np.array_equal(out, plain)
