"""Many samples on the per-sample path at once: parameters and matrices vectorized, kernels per image.

A DataLoader worker asks for a whole batch of indices (``Dataset.__getitems__``). Drawing
each sample's parameters and building its warp and color matrices separately costs more
than the OpenCV kernels at small sizes, so here they are computed for all samples of the
same size in one numpy pass, with ``StreamRNG`` keeping sample ``i``'s draws those of its own
stream ``(seed, epoch, i)``. Only the image kernels (one fused ``warpAffine``, one fused
color transform, noise, ...) run per image.

A sample gets the same parameters alone as inside any batch; the arithmetic on them is
elementwise, so the same code gives the same matrices for one row as for many.

Example:
    >>> from augmentgen.ops.geometric import Rotate
    >>> from augmentgen.pipeline.compose import Pipeline
    >>> imgs = [np.zeros((8, 8, 3), np.uint8)] * 3
    >>> len(map_samples(Pipeline([Rotate(degrees=(-9, 9))]), imgs, seed=0, epoch=0, indices=[0, 1, 2]))
    3
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from augmentgen.core.batch import Sample
from augmentgen.core.streams import StreamRNG
from augmentgen.ops.base import Op
from augmentgen.ops.functional import color as fcolor
from augmentgen.ops.functional import warp as fwarp
from augmentgen.ops.functional.color import _TO_U8
from augmentgen.ops.functional.warp_cv import cv_warp, warps_as_rgba
from augmentgen.pipeline.compose import Composite, Pipeline, _Shape
from augmentgen.pipeline.convert import from_input
from augmentgen.pipeline.plan import Step, Trace, _group, _kind, _spec

_EYE34 = np.eye(3, 4, dtype=np.float64)
_CV_BORDER = {
    "constant": cv2.BORDER_CONSTANT,
    "reflect": cv2.BORDER_REFLECT,
    "replicate": cv2.BORDER_REPLICATE,
}
_CV_INTERP = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}
_CV_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))


def _with_image(s: Sample, image: np.ndarray) -> Sample:
    """``s.replace(image=image)``, built positionally (the field order is pinned by tests/ops/test_warp.py)."""
    return Sample(image, s.label, s.boxes, s.box_valid, s.box_labels, s.masks, s.keypoints, s.meta)


def _bmm3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N, 3, 3] @ [N, 3, 3]`` elementwise, in the order the one-matrix product sums."""
    out: np.ndarray = a[:, :, 0:1] * b[:, 0:1, :] + a[:, :, 1:2] * b[:, 1:2, :] + a[:, :, 2:3] * b[:, 2:3, :]
    return out


def _fused_matrices(group: list[Step], size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    cur = size
    acc: np.ndarray | None = None
    for s in group:
        op = s.leaf
        assert isinstance(op, Op)
        m = np.asarray(op.full_matrix(s.params.to_numpy(), cur), np.float64)
        acc = m if acc is None else _bmm3(m, acc)
        cur = op.output_size(cur)
    assert acc is not None
    return acc, cur


def _cv_affine(mats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which ``[N, 3, 3]`` rows are affine, and every row's ``[2, 3]`` OpenCV matrix
    (the arithmetic of ``warp_cv.cv_matrix``, for all rows at once)."""
    affine = (mats[:, 2, 0] == 0.0) & (mats[:, 2, 1] == 0.0) & (mats[:, 2, 2] == 1.0)
    a, b, c = mats[:, 0, 0], mats[:, 0, 1], mats[:, 0, 2]
    d, e, f = mats[:, 1, 0], mats[:, 1, 1], mats[:, 1, 2]
    cvm = np.stack([a, b, c + 0.5 * (a + b) - 0.5, d, e, f + 0.5 * (d + e) - 0.5], axis=1)
    return affine, cvm.reshape(-1, 2, 3)


def _warp_many(
    samples: list[Sample], mats: np.ndarray, out_size: tuple[int, int], spec: fwarp.WarpSpec
) -> list[Sample]:
    """``warp_sample`` per sample, with the matrix bookkeeping done for all rows at once.

    Image-only samples with an affine matrix call ``cv2.warpAffine`` directly on OpenCV
    matrices built for every row in one pass (the same arithmetic as ``warp_cv.cv_matrix``);
    samples with targets, perspective rows or unusual images go through ``warp_sample``.
    """
    out_size = (int(out_size[0]), int(out_size[1]))
    affine, cvm = _cv_affine(mats)
    ident = (mats == np.eye(3)).all(axis=(1, 2)) & (samples[0].size == out_size)
    dsize = (out_size[1], out_size[0])
    flags, border = _CV_INTERP[spec.interpolation], _CV_BORDER[spec.border_mode]
    out: list[Sample] = []
    for i, s in enumerate(samples):
        img = s.image
        if ident[i]:
            out.append(s)
        elif (
            affine[i]
            and s.boxes is None
            and s.masks is None
            and s.keypoints is None
            and img.ndim == 3
            and img.shape[2] <= 4
            and (img.dtype == np.uint8 or img.dtype == np.float32)
        ):
            v = spec.fill * 255.0 if img.dtype == np.uint8 else spec.fill
            w = cv_warp(img, cvm[i], True, dsize, flags, border, v)
            out.append(Sample(w, s.label, s.boxes, s.box_valid, s.box_labels, s.masks, s.keypoints, s.meta))
        else:
            out.append(fwarp.warp_sample(s, mats[i], out_size, spec))
    return out


def _affine_then(m: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``m ∘ total`` for ``[N, 3, 4]`` affine color maps (elementwise sums)."""
    a = m[:, :, :3]
    lin = (
        a[:, :, 0:1] * total[:, 0:1, :3] + a[:, :, 1:2] * total[:, 1:2, :3] + a[:, :, 2:3] * total[:, 2:3, :3]
    )
    off = (
        a[:, :, 0] * total[:, 0:1, 3]
        + a[:, :, 1] * total[:, 1:2, 3]
        + a[:, :, 2] * total[:, 2:3, 3]
        + m[:, :, 3]
    )
    return np.concatenate([lin, off[:, :, None]], axis=2)


def _color_total(group: list[Step], mean: np.ndarray) -> np.ndarray | None:
    """The ``[N, 3, 4]`` composite color map of a color run, given the ``[N, 3]`` input means."""
    total: np.ndarray | None = None
    for s in group:
        op = s.leaf
        assert isinstance(op, Op)
        p = s.params.to_numpy()
        applied = np.asarray(p.applied, dtype=bool)
        if not applied.any():
            continue
        m = np.asarray(op.color_matrix(p, mean.astype(np.float32)), np.float64)
        m = np.where(applied[:, None, None], m, _EYE34)
        a = m[:, :, :3]
        mean = a[:, :, 0] * mean[:, 0:1] + a[:, :, 1] * mean[:, 1:2] + a[:, :, 2] * mean[:, 2:3] + m[:, :, 3]
        total = m if total is None else _affine_then(m, total)
    return total


def _fused_colors(group: list[Step], samples: list[Sample]) -> list[Sample]:
    mean = np.stack([fcolor.mean_rgb_np(s.image) for s in samples]).astype(np.float64)  # [N, 3]
    total = _color_total(group, mean)
    if total is None:
        return samples
    out = []
    t32 = total.astype(np.float32)
    ident = (total == _EYE34).all(axis=(1, 2))
    for i, smp in enumerate(samples):
        if ident[i]:
            out.append(smp)
        else:
            out.append(_with_image(smp, fcolor.color_affine_np(smp.image, t32[i])))
    return out


def _warp_images(
    images: list[np.ndarray], mats: np.ndarray, out_size: tuple[int, int], spec: fwarp.WarpSpec
) -> list[np.ndarray]:
    """``_warp_many`` for bare images (no targets): no ``Sample`` per image and step."""
    out_size = (int(out_size[0]), int(out_size[1]))
    affine_rows, cvm = _cv_affine(mats)
    affine = affine_rows.tolist()
    ident = ((mats == np.eye(3)).all(axis=(1, 2)) & (images[0].shape[:2] == out_size)).tolist()
    dsize = (out_size[1], out_size[0])
    flags, border = _CV_INTERP[spec.interpolation], _CV_BORDER[spec.border_mode]
    first = images[0]
    if (  # the common batch: one shape and dtype that cv_warp warps as it is, every row affine
        all(affine)
        and first.ndim == 3
        and first.dtype in _CV_DTYPES
        and first.shape[2] in (1, 3, 4)
        and not warps_as_rgba(first.shape[2], first.dtype, flags, dsize)
        and all(im.shape == first.shape and im.dtype == first.dtype for im in images)
    ):
        # cv_warp's plain call, decided once for the batch (no per-image checks)
        v = spec.fill * 255.0 if first.dtype == np.uint8 else spec.fill
        bval = (v, v, v, v)
        warp = cv2.warpAffine
        res = [
            img if ident[i] else warp(img, cvm[i], dsize, flags=flags, borderMode=border, borderValue=bval)
            for i, img in enumerate(images)
        ]
        return res if first.shape[2] != 1 else [r if r.ndim == 3 else r[:, :, None] for r in res]
    out: list[np.ndarray] = []
    for i, img in enumerate(images):
        if ident[i]:
            out.append(img)
        elif affine[i] and img.ndim == 3 and img.shape[2] <= 4 and img.dtype in _CV_DTYPES:
            v = spec.fill * 255.0 if img.dtype == np.uint8 else spec.fill
            out.append(cv_warp(img, cvm[i], True, dsize, flags, border, v))
        else:
            out.append(fwarp.warp_sample(Sample(img), mats[i], out_size, spec).image)
    return out


def _colors_images(group: list[Step], images: list[np.ndarray]) -> list[np.ndarray]:
    """``_fused_colors`` for bare images."""
    rgb8 = all(im.ndim == 3 and im.shape[2] == 3 and im.dtype == np.uint8 for im in images)
    if rgb8:
        # mean_rgb_np for RGB uint8, for all images in one array (the same float32 values)
        sums = np.array([cv2.mean(im)[:3] for im in images], np.float64)
        mean = (sums * (1.0 / 255.0)).astype(np.float32).astype(np.float64)
    else:
        mean = np.stack([fcolor.mean_rgb_np(im) for im in images]).astype(np.float64)
    total = _color_total(group, mean)
    if total is None:
        return images
    ident = (total == _EYE34).all(axis=(1, 2)).tolist()
    t32 = total.astype(np.float32)
    t8 = t32 * _TO_U8
    if rgb8:  # what color_affine_np does for RGB uint8, decided once for the batch
        tr = cv2.transform
        return [im if ident[i] else tr(im, t8[i]) for i, im in enumerate(images)]
    out: list[np.ndarray] = []
    for i, im in enumerate(images):
        if ident[i]:
            out.append(im)
        elif im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3:
            out.append(cv2.transform(im, t8[i]))  # what color_affine_np does for RGB uint8
        else:
            out.append(fcolor.color_affine_np(im, t32[i]))
    return out


def _plain(s: Sample) -> bool:
    return s.boxes is None and s.masks is None and s.keypoints is None


def _apply_images(images: list[np.ndarray], groups: list[list[Step]]) -> list[np.ndarray]:
    """Every group on bare images (every leaf an ``Op``): arrays in, arrays out."""
    for g in groups:
        k = _kind(g[0].leaf)
        if k == "geometric":
            mats, out_size = _fused_matrices(g, images[0].shape[:2])
            images = _warp_images(images, mats, out_size, _spec(g))
        elif k == "color":
            images = _colors_images(g, images)
        else:
            (step,) = g
            op = step.leaf
            assert isinstance(op, Op)
            if op.kind == "pixel":
                images = op.apply_images_np(images, step.params)
            else:  # an op with its own apply_sample (size-changing pixel ops and the like)
                prm = step.params.to_numpy()
                acting = np.flatnonzero(np.asarray(prm.applied, dtype=bool)).tolist()
                images = list(images)
                for i, row in zip(acting, prm.pick(acting), strict=True):
                    images[i] = op.apply_sample(Sample(images[i]), row).image
    return images


def apply_trace_samples(samples: list[Sample], trace: Trace, fuse: bool = True) -> list[Sample]:
    """Apply a trace of ``len(samples)`` rows: row ``i`` of every step to sample ``i``.

    Geometric runs become one ``[N, 3, 3]`` matrix product and one warp per image; color
    runs one ``[N, 3, 4]`` map and one transform per image; other leaves run per image.
    Bare images (no boxes, masks or keypoints) through ops only stay arrays until the end.
    """
    if not samples:
        return samples
    groups = _group(trace.steps) if fuse else [[s] for s in trace.steps]
    if all(isinstance(s.leaf, Op) for s in trace.steps) and all(_plain(s) for s in samples):
        images = _apply_images([s.image for s in samples], groups)
        return [_with_image(s, im) for s, im in zip(samples, images, strict=True)]
    size = samples[0].size
    for g in groups:
        k = _kind(g[0].leaf)
        if k == "geometric" and all(isinstance(s.leaf, Op) for s in g):
            mats, out_size = _fused_matrices(g, size)
            samples = _warp_many(samples, mats, out_size, _spec(g))
            size = out_size
        elif k == "color" and all(isinstance(s.leaf, Op) for s in g):
            samples = _fused_colors(g, samples)
        else:
            (step,) = g
            prm = step.params.to_numpy()
            leaf = step.leaf
            op = leaf if isinstance(leaf, Op) else None
            pixel = op is not None and op.kind not in ("geometric", "color")
            # an Op that did not draw a sample is the identity on it: its rows alone are visited
            acting = np.flatnonzero(np.asarray(prm.applied, dtype=bool)).tolist() if op is not None else range(len(samples))
            new = list(samples)
            for i, row in zip(acting, prm.pick(acting), strict=True):
                if pixel and op is not None:
                    new[i] = _with_image(samples[i], op.apply_image_np(samples[i].image, row))
                else:
                    new[i] = leaf.apply_sample(samples[i], row)
            samples = new
            size = samples[0].size
    return samples


def _leaves(stage: Any) -> list[Any]:
    if isinstance(stage, Composite):
        out: list[Any] = []
        for t in stage.transforms:
            out.extend(_leaves(t))
        return out
    return [stage]


def vectorizable(pipeline: Pipeline) -> bool:
    """Whether every leaf draws per-row parameters (ops and adapters; not ``Synthesize``)."""
    from augmentgen.pipeline.adapters import AlbumentationsStage, TorchvisionStage

    return all(isinstance(x, (Op, AlbumentationsStage, TorchvisionStage)) for x in _leaves(pipeline))


def _same(out: Any) -> Any:
    return out.image


def _convert(x: Any) -> tuple[Any, Any]:
    """``from_input``, with a shortcut for the common HWC uint8/float32 array."""
    if (
        type(x) is np.ndarray
        and x.ndim == 3
        and x.dtype in (np.uint8, np.float32)
        and x.shape[2] in (1, 3, 4)
    ):
        return Sample(x if x.flags.c_contiguous else np.ascontiguousarray(x)), _same
    return from_input(x)


def map_samples(
    pipeline: Pipeline,
    xs: Sequence[Any],
    *,
    seed: int,
    epoch: int | Sequence[int],
    indices: Sequence[int],
) -> list[Any]:
    """Augment per-sample inputs ``xs``; ``xs[k]`` uses the stream ``(seed, epoch_k, indices[k])``.

    Inputs are anything the per-sample path takes (HWC numpy, PIL, dict, ``Sample``);
    outputs are of the same kinds. Samples of the same size and epoch are drawn and
    transformed together; the result for each does not depend on the others.
    """
    n = len(xs)
    if len(indices) != n:
        raise ValueError(f"map_samples: {n} inputs but {len(indices)} indices")
    epochs = [int(epoch)] * n if isinstance(epoch, (int, np.integer)) else [int(e) for e in epoch]
    if len(epochs) != n:
        raise ValueError(f"map_samples: {n} inputs but {len(epochs)} epochs")
    converted = [_convert(x) for x in xs]
    for k, (inner, _) in enumerate(converted):
        if not isinstance(inner, Sample):
            raise TypeError(
                f"map_samples: input {k} is a {type(xs[k]).__name__}; it takes per-sample inputs, not tensors"
            )
    groups: dict[tuple[tuple[int, int], int], list[int]] = {}
    for k, (inner, _) in enumerate(converted):
        groups.setdefault((inner.size, epochs[k]), []).append(k)
    out: list[Any] = [None] * n
    for (size, ep), ks in groups.items():
        rng = StreamRNG.for_samples(seed, ep, [int(indices[k]) for k in ks])
        steps, _ = pipeline.sample_steps(_Shape(len(ks), size, None), rng, "", None)
        samples = [converted[k][0] for k in ks]
        assert all(isinstance(s, Sample) for s in samples)
        res = apply_trace_samples(samples, Trace(tuple(steps)), pipeline.fuse)
        for k, r in zip(ks, res):
            out[k] = converted[k][1](r)
    return out
