"""CLIP-score filter: keep generated images whose CLIP similarity to their prompt reaches a threshold.

CLIPScore (Hessel et al. 2021, https://arxiv.org/abs/2104.08718) is ``100 * max(cos(image, text), 0)``
in the model's joint embedding space, the same number torchmetrics' ``CLIPScore`` reports.
Any CLIP-style model (``get_image_features`` / ``get_text_features``) loads with
``from_pretrained`` from a hub id or a folder; images are resized and normalised in torch with
the processor's settings, so a batch stays on its device.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from augmentgen.core.batch import Batch

logger = logging.getLogger(__name__)


def _features(out: Any) -> Tensor:
    """Projected embeddings from ``get_*_features`` (a tensor in transformers 4, an output with ``pooler_output`` in 5)."""
    if isinstance(out, Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if not isinstance(pooled, Tensor):
        raise TypeError(
            f"CLIP features: expected a tensor or an output with pooler_output, got {type(out).__name__}"
        )
    return pooled


def _size(value: Any, default: int) -> tuple[int, int]:
    """``(H, W)`` from a processor size entry (int, dict or SizeDict)."""
    if value is None:
        return default, default
    if isinstance(value, int):
        return value, value
    get = value.get if isinstance(value, Mapping) else lambda k, d=None: getattr(value, k, d)
    h, w = get("height"), get("width")
    if h and w:
        return int(h), int(w)
    e = get("shortest_edge")
    return (int(e), int(e)) if e else (default, default)


class ClipScoreFilter:
    """Drop rows whose CLIP score against their prompt is below ``threshold``.

    Args:
        model: hub id or folder of a CLIP model with its processor (tokenizer + image processor).
        threshold: minimum CLIPScore (0..100; real SD images against their prompt score ~25-35
            with ViT-L/14, unrelated pairs ~10-15).
        class_prompts: class id -> prompt, used when a batch has no ``meta["prompt"]``.
        device: where the model runs (``None``: the batch's device).
        batch_size: images per forward pass.

    Shape:
        ``score(batch)`` -> ``[B]`` float on the batch's device.

    Example:
        >>> f = ClipScoreFilter("openai/clip-vit-base-patch32", 25.0)  # doctest: +SKIP
        >>> f.keep(Batch(images, label=labels, meta={"prompt": prompts}))  # doctest: +SKIP
    """

    reason = "low_clip_score"
    score_name = "clip_score"

    def __init__(
        self,
        model: str | Path,
        threshold: float,
        *,
        class_prompts: Mapping[int, str] | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 64,
    ) -> None:
        from transformers import AutoModel, AutoProcessor

        if not 0.0 <= threshold <= 100.0:
            raise ValueError(f"ClipScoreFilter.threshold is a CLIPScore in [0, 100], got {threshold}")
        if batch_size < 1:
            raise ValueError(f"ClipScoreFilter.batch_size must be >= 1, got {batch_size}")
        try:
            self.model = AutoModel.from_pretrained(str(model)).eval()
            self.processor = AutoProcessor.from_pretrained(str(model))  # type: ignore[no-untyped-call]
        except (OSError, ValueError) as e:
            raise ValueError(
                f"ClipScoreFilter: cannot load CLIP model {str(model)!r} (hub id or folder): {e}"
            ) from e
        for name in ("get_image_features", "get_text_features"):
            if not hasattr(self.model, name):
                raise TypeError(
                    f"ClipScoreFilter: {str(model)!r} is a {type(self.model).__name__}, it has no {name}"
                )
        ip = self.processor.image_processor
        self.crop = _size(getattr(ip, "crop_size", None), 224)
        self.short = min(_size(getattr(ip, "size", None), self.crop[0]))
        self.mean = torch.tensor(ip.image_mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(ip.image_std, dtype=torch.float32)[:, None, None]
        self.threshold = float(threshold)
        self.class_prompts = {int(k): str(v) for k, v in (class_prompts or {}).items()}
        self.device = None if device is None else torch.device(device)
        self.batch_size = batch_size
        self._text_cache: dict[str, Tensor] = {}

    def prompts(self, batch: Batch) -> list[str]:
        """Each row's prompt: ``meta["prompt"]``, else ``class_prompts`` of its label."""
        p = batch.meta.get("prompt")
        if isinstance(p, list) and len(p) == batch.batch_size and all(isinstance(x, str) for x in p):
            return list(p)
        if batch.label is None or not self.class_prompts:
            raise ValueError(
                "ClipScoreFilter needs meta['prompt'] (one per row) or labels with class_prompts to know each row's text"
            )
        labels = [int(v) for v in batch.label.tolist()]
        missing = sorted(set(labels) - set(self.class_prompts))
        if missing:
            raise ValueError(f"ClipScoreFilter: no class_prompts for classes {missing}")
        return [self.class_prompts[v] for v in labels]

    def pixel_values(self, images: Tensor) -> Tensor:
        """``[B, C, H, W]`` in [0, 1] (or uint8) -> the model's normalised ``[B, 3, crop_h, crop_w]``."""
        x = images.float() / 255.0 if not images.is_floating_point() else images.float()
        x = torch.nan_to_num(x).clamp(0, 1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        scale = self.short / min(h, w)  # shortest edge to the processor's size, then a centre crop
        size = (max(self.crop[0], round(h * scale)), max(self.crop[1], round(w * scale)))
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=scale < 1).clamp(0, 1)
        top, left = (size[0] - self.crop[0]) // 2, (size[1] - self.crop[1]) // 2
        x = x[..., top : top + self.crop[0], left : left + self.crop[1]]
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def _text(self, prompts: list[str], device: torch.device) -> Tensor:
        todo = sorted({p for p in prompts if p not in self._text_cache})
        if todo:
            tok = self.processor.tokenizer(todo, padding=True, truncation=True, return_tensors="pt")
            feats = _features(self.model.get_text_features(**{k: v.to(device) for k, v in tok.items()}))
            for p, f in zip(todo, F.normalize(feats.float(), dim=-1), strict=True):
                self._text_cache[p] = f.detach()
        return torch.stack([self._text_cache[p].to(device) for p in prompts])

    def score(self, batch: Batch) -> Tensor:
        """``[B]`` CLIPScore of each row against its prompt."""
        prompts = self.prompts(batch)
        dev = self.device or batch.device
        self.model.to(dev)
        out = []
        with torch.inference_mode():
            for s in range(0, batch.batch_size, self.batch_size):
                px = self.pixel_values(batch.image[s : s + self.batch_size].to(dev))
                img = F.normalize(_features(self.model.get_image_features(pixel_values=px)).float(), dim=-1)
                txt = self._text(prompts[s : s + self.batch_size], dev)
                out.append(100.0 * (img * txt).sum(-1).clamp_min(0))
        if not out:
            return torch.zeros(0, device=batch.device)
        return torch.cat(out).to(batch.device)

    def keep(self, batch: Batch) -> Tensor:
        return self.score(batch) >= self.threshold
