"""A shard source over a detection set: images with boxes and instance masks, resized, then the pipeline.

Rows are visited in a seeded order (a permutation per pass, as ``DatasetSource`` does), so
shard ``i`` depends only on the recipe, the seed and ``i``. After the pipeline, dropped
boxes are packed away (``compact_instances``), so a shard's ``boxes.json`` row ``k`` and
its ``mask.png`` id ``k + 1`` are the same object.

Example:
    >>> from augmentgen.data.detection import load_coco
    >>> src = DetectionSource(load_coco("examples/data/driving-coco/annotations.json"), size=(96, 160))
    >>> next(src.batches(ShardTask.make(0, size=2, base_seed=0, batch_size=2))).boxes.xyxy.shape[0]
    2
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from augmentgen.core.batch import Batch
from augmentgen.core.rng import derive_seed
from augmentgen.data.detection import DetectionDataset, compact_instances
from augmentgen.shards.sources import PipelineFn, ShardTask, apply_pipeline, provenance_rows


class DetectionSource:
    """Rows of a ``DetectionDataset`` resized to ``size`` (H, W), then the pipeline, then compacted.

    Args:
        dataset: the detection set. size: (H, W) every image is resized to (boxes and masks follow).
        order: ``shuffle`` (seeded permutation per pass) or ``sequential``.
        pipeline: a callable ``(Batch, rng=...) -> Batch`` (e.g. ``Pipeline``), or None.
        device: where the pipeline runs.
    """

    def __init__(
        self,
        dataset: DetectionDataset,
        *,
        size: tuple[int, int],
        order: str = "shuffle",
        pipeline: PipelineFn | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if order not in ("shuffle", "sequential"):
            raise ValueError(f"DetectionSource.order must be 'shuffle' or 'sequential', got {order!r}")
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"DetectionSource.size must be a positive (H, W), got {size!r}")
        self.dataset, self.size, self.order = dataset, (int(size[0]), int(size[1])), order
        self.pipeline, self.device = pipeline, torch.device(device)

    def describe(self) -> dict[str, Any]:
        h = hashlib.sha256()
        for r in self.dataset.records:
            h.update(f"{r.file.name}|{r.size}|{r.image_id}".encode())
            h.update(np.ascontiguousarray(r.boxes, np.float32).tobytes() + r.labels.tobytes())
            h.update(json.dumps(r.segments, sort_keys=True, default=str).encode())
        return {
            "kind": "detection",
            "name": self.dataset.name,
            "samples": len(self.dataset),
            "size": list(self.size),
            "categories": {str(c.id): c.name for c in self.dataset.categories},
            "sha256": h.hexdigest(),
        }

    def indices(self, start: int, n: int, base_seed: int) -> np.ndarray:
        g = np.arange(start, start + n, dtype=np.int64)
        size = len(self.dataset)
        if self.order == "sequential":
            return g % size
        out = np.empty(n, dtype=np.int64)
        for epoch in np.unique(g // size):
            perm = np.random.Generator(
                np.random.PCG64(derive_seed(base_seed, "order", int(epoch)))
            ).permutation(size)
            sel = g // size == epoch
            out[sel] = perm[g[sel] % size]
        return out

    def batches(self, task: ShardTask) -> Iterator[Batch]:
        for j, (off, n) in enumerate(task.spans()):
            seed = task.batch_seed(j)
            idx = self.indices(task.start + off, n, task.base_seed)
            batch = self.dataset.to_batch(idx, size=self.size).to(self.device)
            base = [
                {
                    "source": self.dataset.name,
                    "source_index": int(idx[r]),
                    "file": batch.meta["file"][r].rsplit("/", 1)[-1],
                    "image_id": batch.meta["image_id"][r],
                    "seed": seed,
                    "row": r,
                }
                for r in range(n)
            ]
            batch = batch.replace(meta={})
            with torch.inference_mode():
                out, ops = apply_pipeline(self.pipeline, batch, seed)
            out = compact_instances(out)
            yield out.replace(meta={**out.meta, "provenance": provenance_rows(out, base, ops)})
