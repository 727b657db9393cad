"""Turn whatever a user hands a pipeline into a Batch or a Sample, and turn the result back.

Accepted: ``PIL.Image``, HWC (or HW) numpy array, CHW or BCHW tensor, a dict with
``image`` plus optional ``label``, ``boxes`` ``[N, 4]``, ``box_labels`` ``[N]``, ``masks``
``[K, H, W]`` / ``mask`` ``[H, W]``, ``keypoints`` ``[K, 2]``, a ``Sample`` or a ``Batch``.
numpy and PIL inputs take the per-sample OpenCV path; tensors take the batched torch path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.batch import Batch, Boxes, Sample, renumber_instance_ids

Restore = Callable[[Batch | Sample], Any]


def _pil_image_type() -> type | None:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a core dependency
        return None
    return Image.Image


def _np_image(arr: np.ndarray, where: str) -> tuple[np.ndarray, bool]:
    if arr.ndim == 2:
        return arr[:, :, None], True
    if arr.ndim != 3:
        raise ValueError(f"{where}: a numpy image must be HW or HWC, got shape {arr.shape}")
    if arr.shape[2] not in (1, 3, 4) and arr.shape[0] in (1, 3):
        raise ValueError(
            f"{where}: numpy images are HWC; shape {arr.shape} looks CHW, pass a torch tensor for CHW"
        )
    if arr.dtype not in (np.uint8, np.float32):
        raise TypeError(f"{where}: numpy images must be uint8 or float32, got {arr.dtype}")
    return arr, False


def _sample_restore_image(squeeze: bool) -> Restore:
    def restore(out: Batch | Sample) -> Any:
        assert isinstance(out, Sample)
        img = out.image
        return img[:, :, 0] if squeeze and img.ndim == 3 and img.shape[2] == 1 else img

    return restore


def from_input(x: Any) -> tuple[Batch | Sample, Restore]:
    """Convert ``x`` for a pipeline; the returned function converts the output back."""
    if isinstance(x, (Batch, Sample)):
        return x, lambda out: out
    pil = _pil_image_type()
    if pil is not None and isinstance(x, pil):
        from PIL import Image

        pil_img: Any = x
        arr = np.asarray(pil_img.convert("RGB") if pil_img.mode not in ("L", "RGB") else pil_img)
        img, squeeze = _np_image(arr, "PIL image")

        def restore_pil(out: Batch | Sample) -> Any:
            assert isinstance(out, Sample)
            im = out.image
            if im.dtype != np.uint8:
                im = np.clip(np.rint(im * 255.0), 0, 255).astype(np.uint8)
            return Image.fromarray(im[:, :, 0] if squeeze else im)

        return Sample(np.ascontiguousarray(img)), restore_pil
    if isinstance(x, np.ndarray):
        img, squeeze = _np_image(x, "numpy image")
        return Sample(np.ascontiguousarray(img)), _sample_restore_image(squeeze)
    if isinstance(x, Tensor):
        if x.ndim == 3:
            return Batch(x.unsqueeze(0)), lambda out: _as_batch(out).image[0]
        if x.ndim == 4:
            return Batch(x), lambda out: _as_batch(out).image
        raise ValueError(f"tensor image must be CHW or BCHW, got shape {tuple(x.shape)}")
    if isinstance(x, dict):
        return _from_dict(x)
    raise TypeError(
        f"a pipeline takes a PIL image, numpy HWC array, CHW tensor, dict, Sample or Batch; got {type(x).__name__}"
    )


def _as_batch(out: Batch | Sample) -> Batch:
    if not isinstance(out, Batch):
        raise TypeError(f"expected a Batch, got {type(out).__name__}")
    return out


def _from_dict(d: dict[str, Any]) -> tuple[Batch | Sample, Restore]:
    if "image" not in d:
        raise ValueError(f"a dict sample needs an 'image' key; got keys {sorted(d)}")
    image = d["image"]
    single_mask = "mask" in d and "masks" not in d
    masks = d.get("masks", d.get("mask"))
    if isinstance(image, Tensor):
        return _dict_to_batch(d, image, masks, single_mask)
    inner, restore_img = from_input(image)
    assert isinstance(inner, Sample)
    boxes = None if d.get("boxes") is None else np.asarray(d["boxes"], dtype=np.float32).reshape(-1, 4)
    n = 0 if boxes is None else boxes.shape[0]
    blabels = d.get("box_labels")
    blabels_arr = None if boxes is None else (
        np.full(n, -1, np.int64) if blabels is None else np.asarray(blabels, dtype=np.int64).reshape(n)
    )
    m = None
    if masks is not None:
        m = np.asarray(masks)
        m = m[None] if m.ndim == 2 else m
        if m.shape[-2:] != inner.size:
            raise ValueError(f"dict sample: masks {m.shape} do not match image size {inner.size}")
    sample = Sample(
        image=inner.image,
        label=None if d.get("label") is None else int(d["label"]),
        boxes=boxes,
        box_valid=None if boxes is None else np.ones(n, bool),
        box_labels=blabels_arr,
        masks=m,
        keypoints=None if d.get("keypoints") is None else np.asarray(d["keypoints"], np.float32).reshape(-1, 2),
    )

    def restore(out: Batch | Sample) -> Any:
        assert isinstance(out, Sample)
        res = dict(d)
        res["image"] = restore_img(out)
        out_masks = out.masks
        if out.boxes is not None:
            keep = out.box_valid if out.box_valid is not None else np.ones(len(out.boxes), bool)
            res["boxes"] = out.boxes[keep]
            if "box_labels" in d or out.box_labels is not None:
                res["box_labels"] = None if out.box_labels is None else out.box_labels[keep]
            if out_masks is not None and out_masks.shape[0] == 1 and not keep.all():
                out_masks = renumber_instance_ids(
                    torch.from_numpy(np.ascontiguousarray(out_masks)), torch.from_numpy(np.asarray(keep, bool))
                ).numpy()
        if out_masks is not None:
            res["mask" if single_mask else "masks"] = out_masks[0] if single_mask else out_masks
        if out.keypoints is not None:
            res["keypoints"] = out.keypoints
        return res

    return sample, restore


def _dict_to_batch(d: dict[str, Any], image: Tensor, masks: Any, single_mask: bool) -> tuple[Batch, Restore]:
    unbatched = image.ndim == 3
    img = image.unsqueeze(0) if unbatched else image
    boxes = None
    if d.get("boxes") is not None:
        bx = torch.as_tensor(d["boxes"], dtype=torch.float32)
        bl = d.get("box_labels")
        if unbatched:
            bx = bx.reshape(1, -1, 4)
            lab = torch.full(bx.shape[:2], -1, dtype=torch.int64) if bl is None else torch.as_tensor(bl).reshape(1, -1)
        else:
            lab = torch.full(bx.shape[:2], -1, dtype=torch.int64) if bl is None else torch.as_tensor(bl)
        valid = torch.ones(bx.shape[:2], dtype=torch.bool)
        boxes = Boxes(bx.to(img.device), valid.to(img.device), lab.to(img.device))
    m = None
    if masks is not None:
        m = torch.as_tensor(masks)
        if single_mask:
            m = m.unsqueeze(-3)
        if unbatched:
            m = m.unsqueeze(0)
    label = d.get("label")
    lab_t = None if label is None else torch.as_tensor(label).reshape(-1)
    kp = d.get("keypoints")
    kp_t = None if kp is None else torch.as_tensor(kp, dtype=torch.float32)
    if kp_t is not None and unbatched:
        kp_t = kp_t.unsqueeze(0)
    batch = Batch(image=img, label=lab_t, boxes=boxes, masks=m, keypoints=kp_t)

    def restore(out: Batch | Sample) -> Any:
        b = _as_batch(out)
        res = dict(d)
        res["image"] = b.image[0] if unbatched else b.image
        mm = None if b.masks is None else b.masks[0] if unbatched else b.masks
        if b.boxes is not None:
            if unbatched:
                keep = b.boxes.valid[0]
                res["boxes"] = b.boxes.xyxy[0][keep]
                res["box_labels"] = b.boxes.labels[0][keep]
                if mm is not None and mm.shape[0] == 1 and not bool(keep.all()):
                    mm = renumber_instance_ids(mm, keep)
            else:
                res["boxes"], res["box_valid"], res["box_labels"] = b.boxes.xyxy, b.boxes.valid, b.boxes.labels
        if mm is not None:
            res["mask" if single_mask else "masks"] = mm.squeeze(-3) if single_mask else mm
        if b.keypoints is not None:
            res["keypoints"] = b.keypoints[0] if unbatched else b.keypoints
        return res

    return batch, restore
