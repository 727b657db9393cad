"""MixUp and CutMix after collate: each row mixed with another row, its label with it.

``LabelMix`` takes a collated batch (``[B, C, H, W]`` images and ``[B]`` class ids) and returns
the mixed images and ``[B, num_classes]`` soft targets, which ``F.cross_entropy(logits,
targets)`` takes as they are. It is what ``torchvision.transforms.v2.MixUp`` / ``CutMix`` (or
``RandomChoice`` of both) and timm's ``Mixup`` do, with three differences:

- **Per-sample draws** (``per_sample=True``, the default): every row draws its own weight, its
  own box and (with both alphas > 0) its own choice of MixUp or CutMix, as timm's ``mode="elem"``
  does, instead of one draw shared by the whole batch. ``per_sample=False`` shares one draw, and
  then the output equals torchvision's for the same weight and box (tested).
- **Seeded**: the draws of batch ``step`` in ``epoch`` come from the stream ``(seed, "label_mix",
  epoch, step)`` (as ``BatchAugment``'s do), never from the global RNG, so a run replays exactly
  and the result is the same on any device and for any DataLoader worker count.
- **Exact targets**: a CutMix row's label weight is the share of its pixels it keeps (the box is
  clipped at the border and rounded to pixels first), MixUp rows are blended with ``torch.lerp``,
  so a weight of 0 or 1 gives a row's pixels bit for bit.

Rows are paired as torchvision pairs them: row ``i`` takes pixels from row ``i - 1`` (the last
from the first). The sampler shuffles, so the pairs are random; a batch of one is left alone.

Example:
    >>> import torch
    >>> mix = LabelMix(num_classes=10, seed=0)
    >>> images, targets = mix(torch.rand(8, 3, 32, 32), torch.arange(8), epoch=0, step=0)
    >>> targets.shape, bool(torch.allclose(targets.sum(1), torch.ones(8)))
    (torch.Size([8, 10]), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import overload

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.batch import Batch
from augmentgen.core.rng import derive_seed


@dataclass(frozen=True)
class LabelMixParams:
    """One batch's draws (CPU tensors; ``apply`` moves them to the images' device).

    ``lam`` is the weight of a row's own label: 1 for a row left alone, for a CutMix row the
    share of its pixels outside the box.
    """

    partner: Tensor  # [B] int64: the row whose pixels and label are mixed in
    lam: Tensor  # [B] float64 in [0, 1]
    cut: Tensor  # [B] bool: CutMix (True) or MixUp (False)
    box: Tensor  # [B, 4] int64 x1, y1, x2, y2 (pixels, end exclusive) of the pasted region; zeros for MixUp rows


@dataclass
class LabelMix:
    """MixUp and/or CutMix with soft targets, seeded per batch.

    Args:
        num_classes: length of the target vectors; every label must lie in ``[0, num_classes)``.
        mixup_alpha: MixUp's weight is drawn from Beta(alpha, alpha); 0 turns MixUp off.
        cutmix_alpha: CutMix's weight likewise (the box covers about ``1 - weight`` of the image);
            0 turns CutMix off.
        switch_prob: with both on, the probability that a row (or the batch) uses CutMix.
        p: probability that a row (or the batch) is mixed at all; the rest keep pixels and label.
        label_smoothing: the targets are ``1 - s + s/C`` on a label and ``s/C`` elsewhere before mixing.
        per_sample: one draw per row (True) or one for the whole batch (False, torchvision's way).
        seed: the base of every batch's stream.

    Shape:
        images ``[B, C, H, W]`` (float, or uint8 which is converted to float32 in [0, 1] first),
        labels ``[B]`` int -> images of the same float dtype, targets ``[B, num_classes]`` float32
        (float64 for float64 images). A ``Batch`` in gives a ``Batch`` out (with its label unchanged)
        and the targets.
    """

    num_classes: int
    mixup_alpha: float = 1.0
    cutmix_alpha: float = 1.0
    switch_prob: float = 0.5
    p: float = 1.0
    label_smoothing: float = 0.0
    per_sample: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.num_classes) < 1:
            raise ValueError(f"LabelMix.num_classes must be >= 1, got {self.num_classes}")
        for name in ("mixup_alpha", "cutmix_alpha"):
            a = float(getattr(self, name))
            if not (a >= 0.0 and math.isfinite(a)):
                raise ValueError(f"LabelMix.{name} must be a finite number >= 0, got {a}")
        if self.mixup_alpha == 0 and self.cutmix_alpha == 0:
            raise ValueError("LabelMix: mixup_alpha and cutmix_alpha are both 0, so nothing would be mixed")
        for name in ("switch_prob", "p", "label_smoothing"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"LabelMix.{name} must be in [0, 1], got {v}")

    # ---- draws ---------------------------------------------------------------------------------
    def rng(self, epoch: int, step: int) -> np.random.Generator:
        """The stream of batch ``step`` in ``epoch``."""
        return np.random.default_rng(derive_seed(self.seed, "label_mix", epoch, step))

    def sample_params(self, n: int, size: tuple[int, int], rng: np.random.Generator) -> LabelMixParams:
        """Draw the pairing, weights, modes and boxes of ``n`` rows of ``size`` = (H, W).

        The draws come in a fixed order and number, so changing ``p`` or ``switch_prob`` does not
        shift the other draws of the stream.
        """
        h, w = size
        k = n if self.per_sample else 1
        applied = rng.random(k) < self.p
        pick_cut = rng.random(k) < self.switch_prob
        lam_mix = rng.beta(self.mixup_alpha, self.mixup_alpha, k) if self.mixup_alpha > 0 else np.ones(k)
        lam_cut = rng.beta(self.cutmix_alpha, self.cutmix_alpha, k) if self.cutmix_alpha > 0 else np.ones(k)
        cx = rng.integers(0, w, k)
        cy = rng.integers(0, h, k)
        if self.mixup_alpha == 0:
            cut = np.ones(k, dtype=bool)
        elif self.cutmix_alpha == 0:
            cut = np.zeros(k, dtype=bool)
        else:
            cut = pick_cut
        cut &= applied
        box, kept = cutmix_box(lam_cut, cx, cy, (h, w))
        box = np.where(cut[:, None], box, 0)
        lam = np.where(cut, kept, lam_mix)
        lam = np.where(applied, lam, 1.0)
        if not self.per_sample:
            lam, cut, box = np.repeat(lam, n), np.repeat(cut, n), np.repeat(box, n, axis=0)
        partner = (np.arange(n) - 1) % max(n, 1)
        return LabelMixParams(
            partner=torch.from_numpy(partner.astype(np.int64)),
            lam=torch.from_numpy(lam.astype(np.float64)),
            cut=torch.from_numpy(cut),
            box=torch.from_numpy(box.astype(np.int64)).reshape(n, 4),
        )

    # ---- the mix -------------------------------------------------------------------------------
    def apply(self, images: Tensor, labels: Tensor, params: LabelMixParams) -> tuple[Tensor, Tensor]:
        """Mix ``images`` and one-hot ``labels`` as ``params`` say (see the class for shapes)."""
        x = _float_images(images)
        y = self._check_labels(labels, x.shape[0])
        n, dev = x.shape[0], x.device
        if not (params.partner.shape == params.lam.shape == params.cut.shape == (n,) and params.box.shape == (n, 4)):
            raise ValueError(f"LabelMix.apply: params are drawn for another batch size than the images' {n}")
        partner = params.partner.to(dev)
        lam = params.lam.to(dev)
        tdtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        t = torch.nn.functional.one_hot(y.to(dev), self.num_classes).to(tdtype)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + self.label_smoothing / self.num_classes
        lt = lam.to(tdtype)[:, None]
        targets = torch.lerp(t[partner], t, lt) if n else t
        # one lerp for every row: weight 1 - lam for a MixUp row (0 for a row left alone); the
        # partner rows are read through views when they are the usual roll by one, so the batch
        # is never gathered into a copy. CutMix rows: on small images a 0/1 weight plane in the
        # same lerp (lerp gives its end points exactly); on large ones, or when the whole batch
        # shares one box, weight 0 and then the boxes copied from the partners (a plane would
        # cost a pass over B x H x W floats)
        h, w_ = x.shape[2], x.shape[3]
        w = (1.0 - params.lam).to(x.dtype)
        cut_rows = params.cut.nonzero().squeeze(1)
        rolled = n > 1 and torch.equal(params.partner, (torch.arange(n) - 1) % n)
        boxes = params.box[cut_rows]
        shared = rolled and len(cut_rows) == n and bool((boxes == boxes[0]).all())  # one box for the batch
        plane = h * w_ < _PLANE_MAX_PIXELS and not shared
        row_w = torch.where(params.cut, 0.0, w).to(dev)
        if len(cut_rows) and plane:
            b = params.box.to(dev)
            ys = torch.arange(h, device=dev)
            xs = torch.arange(w_, device=dev)
            inside_y = ((ys[None, :] >= b[:, 1:2]) & (ys[None, :] < b[:, 3:4])).to(x.dtype)  # [B, H]
            inside_x = ((xs[None, :] >= b[:, 0:1]) & (xs[None, :] < b[:, 2:3])).to(x.dtype)  # [B, W]
            # the box's 0/1 plane (all 0 for a MixUp row, whose box is empty) plus the row's weight
            weight = torch.addcmul(row_w[:, None, None], inside_y[:, :, None], inside_x[:, None, :]).unsqueeze(1)
        else:
            weight = row_w.view(n, 1, 1, 1)
        out = torch.empty_like(x)
        if rolled:
            torch.lerp(x[1:], x[:-1], weight[1:], out=out[1:])
            torch.lerp(x[:1], x[-1:], weight[:1], out=out[:1])
        elif n:
            torch.lerp(x, x[partner], weight, out=out)
        if len(cut_rows) and not plane:
            if shared:
                x1, y1, x2, y2 = boxes[0].tolist()
                out[1:, :, y1:y2, x1:x2] = x[:-1, :, y1:y2, x1:x2]
                out[:1, :, y1:y2, x1:x2] = x[-1:, :, y1:y2, x1:x2]
            else:
                for i, j, (x1, y1, x2, y2) in zip(
                    cut_rows.tolist(), params.partner[cut_rows].tolist(), boxes.tolist(), strict=True
                ):
                    out[i, :, y1:y2, x1:x2] = x[j, :, y1:y2, x1:x2]
        return out, targets

    @overload
    def __call__(
        self, images: Tensor, labels: Tensor, *, epoch: int = 0, step: int = 0
    ) -> tuple[Tensor, Tensor]: ...

    @overload
    def __call__(self, images: Batch, labels: None = None, *, epoch: int = 0, step: int = 0) -> tuple[Batch, Tensor]: ...

    def __call__(
        self, images: Tensor | Batch, labels: Tensor | None = None, *, epoch: int = 0, step: int = 0
    ) -> tuple[Tensor | Batch, Tensor]:
        """Mix batch ``step`` of ``epoch`` with its own seeded draws."""
        if isinstance(images, Batch):
            batch = images
            for name in ("boxes", "masks", "keypoints"):
                if getattr(batch, name) is not None:
                    raise ValueError(
                        f"LabelMix mixes whole images and their class labels; this batch has {name}, which "
                        "it cannot carry (for detection, mix with the mosaic or copy_paste ops)"
                    )
            if batch.label is None:
                raise ValueError("LabelMix: the batch has no labels to mix")
            out, targets = self(batch.image, batch.label, epoch=epoch, step=step)
            return batch.replace(image=out), targets
        if labels is None:
            raise ValueError("LabelMix: pass the labels with the images, e.g. mix(images, labels)")
        images = _float_images(images)
        params = self.sample_params(images.shape[0], (images.shape[2], images.shape[3]), self.rng(epoch, step))
        return self.apply(images, labels, params)

    def _check_labels(self, labels: Tensor, n: int) -> Tensor:
        if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.shape[0] != n:
            shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"LabelMix: labels must be a [B] = [{n}] tensor of class ids, got {shape}")
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"LabelMix: labels must be integer class ids, got {labels.dtype}")
        if n:
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= self.num_classes:
                bad = lo if lo < 0 else hi
                row = int((labels == bad).nonzero()[0, 0])
                raise ValueError(f"LabelMix: label {bad} of row {row} is outside [0, {self.num_classes})")
        return labels.long()


# CutMix rows of images with fewer pixels than this mix through a 0/1 weight plane in one kernel;
# larger ones copy each box (timed: benchmarks/label_mix.py)
_PLANE_MAX_PIXELS = 64 * 64


def cutmix_box(lam: np.ndarray, cx: np.ndarray, cy: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """CutMix's boxes as torchvision draws them, and the share of pixels each leaves.

    Half-sides ``int(0.5 * sqrt(1 - lam) * side)`` around the centre ``(cx, cy)``, clipped at the
    border: ``[n, 4]`` int64 x1, y1, x2, y2 (end exclusive) and ``[n]`` float64 ``1 - area / (H W)``.
    """
    h, w = size
    r = 0.5 * np.sqrt(1.0 - np.asarray(lam, dtype=np.float64))
    rw, rh = (r * w).astype(np.int64), (r * h).astype(np.int64)
    x1, y1 = np.maximum(cx - rw, 0), np.maximum(cy - rh, 0)
    x2, y2 = np.minimum(cx + rw, w), np.minimum(cy + rh, h)
    kept = 1.0 - (x2 - x1) * (y2 - y1) / float(h * w)
    return np.stack([x1, y1, x2, y2], 1).astype(np.int64), kept


def _float_images(images: Tensor) -> Tensor:
    if not isinstance(images, Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"LabelMix: images must be a [B, C, H, W] tensor, got {shape}")
    if images.shape[2] == 0 or images.shape[3] == 0:
        raise ValueError(f"LabelMix: images have no pixels, shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if not images.dtype.is_floating_point:
        raise ValueError(f"LabelMix: images must be float or uint8, got {images.dtype}")
    return images


def MixUp(num_classes: int, alpha: float = 1.0, **kwargs: object) -> LabelMix:  # noqa: N802 (reads as a class)
    """MixUp alone: ``LabelMix(num_classes, mixup_alpha=alpha, cutmix_alpha=0, ...)``."""
    return LabelMix(num_classes, mixup_alpha=alpha, cutmix_alpha=0.0, **kwargs)  # type: ignore[arg-type]


def CutMix(num_classes: int, alpha: float = 1.0, **kwargs: object) -> LabelMix:  # noqa: N802
    """CutMix alone: ``LabelMix(num_classes, mixup_alpha=0, cutmix_alpha=alpha, ...)``."""
    return LabelMix(num_classes, mixup_alpha=0.0, cutmix_alpha=alpha, **kwargs)  # type: ignore[arg-type]
