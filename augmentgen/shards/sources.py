"""Where shard samples come from: a protocol and two sources (a generator, or a data set), each then a pipeline.

A source turns a ``ShardTask`` into batches. Every batch draws from its own seed,
``derive_seed(task.seed, "batch", j)``, so shard ``i`` depends only on the recipe, the seed
and ``i``, never on which process writes it or what it wrote before. Each yielded Batch
carries ``meta["provenance"]``: one JSON-able dict per row (seed and row of its batch,
condition, source index, the pipeline's per-sample op parameters, filter scores).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from augmentgen.core.batch import Batch
from augmentgen.core.generator import SampleGenerator
from augmentgen.core.rng import derive_seed, torch_rng

logger = logging.getLogger(__name__)

PipelineFn = Callable[..., Any]


@dataclass(frozen=True)
class ShardTask:
    """The work of one shard.

    Args:
        index: shard number ``i``.
        start: global index of the shard's first sample (``i * size``).
        size: samples in the shard.
        seed: the shard's seed, ``derive_seed(base_seed, "shard", i)``.
        base_seed: the recipe seed (for things shared by all shards, e.g. a data set order).
        batch_size: samples per source call.

    Example:
        >>> ShardTask.make(2, size=5, base_seed=0, batch_size=2).spans()
        [(0, 2), (2, 2), (4, 1)]
    """

    index: int
    start: int
    size: int
    seed: int
    base_seed: int
    batch_size: int

    @staticmethod
    def make(index: int, *, size: int, base_seed: int, batch_size: int) -> ShardTask:
        return ShardTask(
            index, index * size, size, derive_seed(base_seed, "shard", index), base_seed, batch_size
        )

    def spans(self) -> list[tuple[int, int]]:
        """``(offset, n)`` of each batch inside the shard."""
        return [(o, min(self.batch_size, self.size - o)) for o in range(0, self.size, self.batch_size)]

    def batch_seed(self, j: int) -> int:
        return derive_seed(self.seed, "batch", j)


@runtime_checkable
class ShardSource(Protocol):
    """Makes the batches of a shard; ``describe()`` says what it is (for the manifest and the recipe hash)."""

    def describe(self) -> dict[str, Any]: ...

    def batches(self, task: ShardTask) -> Iterator[Batch]: ...


def jsonable(v: Any) -> Any:
    """Tensors, numpy values and containers as plain JSON types (None when there is no JSON form)."""
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().tolist()
    if isinstance(v, (np.ndarray, np.generic)):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return None


def build_pipeline(spec: Any) -> PipelineFn | None:
    """A recipe's ``pipeline`` section (mapping or list of stages) as a callable ``Pipeline``."""
    if spec is None:
        return None
    from augmentgen.pipeline import Pipeline

    pipeline: PipelineFn = Pipeline.from_dict(spec, where="recipe: pipeline")
    return pipeline


def apply_pipeline(
    pipeline: PipelineFn | None, batch: Batch, seed: int
) -> tuple[Batch, list[dict[str, Any]] | None]:
    """Run ``pipeline`` on ``batch`` under ``torch_rng(seed, "pipeline")``; also its per-sample op params when it has them."""
    if pipeline is None:
        return batch, None
    rng = torch_rng(seed, "pipeline", device=batch.device)
    try:
        accepts_trace = "return_trace" in inspect.signature(pipeline).parameters
    except (TypeError, ValueError):
        accepts_trace = False
    if accepts_trace:
        out, trace = pipeline(batch, rng=rng, return_trace=True)
        rows = trace.per_sample() if hasattr(trace, "per_sample") else None
    else:
        out, rows = pipeline(batch, rng=rng), None
    if not isinstance(out, Batch):
        raise TypeError(f"pipeline returned {type(out).__name__}, expected a Batch")
    return out, rows


def provenance_rows(
    batch: Batch, base: list[dict[str, Any]], ops: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Per-row provenance of a pipeline's output: the source's rows, op params, per-sample meta (scores, prompts)."""
    n = batch.batch_size
    # the source's rows are fresh dicts made for this batch: extended in place, not copied
    rows = base[:n] + [{"appended_by_pipeline": True} for _ in range(n - len(base))]
    if ops is not None:
        for r in range(min(n, len(ops))):
            rows[r]["ops"] = jsonable(ops[r])
    for k, v in batch.meta.items():
        if k == "provenance" or not isinstance(v, (list, tuple)) or len(v) != n:
            continue
        for r in range(n):
            val = jsonable(v[r])
            if val is not None and k not in rows[r]:
                rows[r][k] = val
    return rows


class GeneratorSource:
    """Labels (cycled or seeded) into a ``SampleGenerator``, then the pipeline.

    Args:
        generator: any ``SampleGenerator``.
        class_ids: the classes to generate.
        labels: ``cycle`` (sample ``g`` gets ``class_ids[g % n]``) or ``random`` (drawn from the batch seed).
        pipeline: a callable ``(Batch, rng=...) -> Batch`` (e.g. ``Pipeline``), or None.
        device: where the generator runs.
        info: name / version / weights_sha256, copied into every sample's provenance.

    Example:
        >>> src = GeneratorSource(gen, class_ids=list(range(10)))  # doctest: +SKIP
        >>> next(src.batches(ShardTask.make(0, size=8, base_seed=0, batch_size=8))).image.shape  # doctest: +SKIP
    """

    def __init__(
        self,
        generator: SampleGenerator,
        *,
        class_ids: list[int],
        labels: str = "cycle",
        pipeline: PipelineFn | None = None,
        device: str | torch.device = "cpu",
        info: dict[str, Any] | None = None,
    ) -> None:
        if labels not in ("cycle", "random"):
            raise ValueError(f"GeneratorSource.labels must be 'cycle' or 'random', got {labels!r}")
        if not class_ids:
            raise ValueError("GeneratorSource.class_ids is empty")
        self.generator, self.class_ids, self.labels = generator, list(class_ids), labels
        self.pipeline, self.device = pipeline, torch.device(device)
        self.info = dict(info or {"name": type(generator).__name__})

    def describe(self) -> dict[str, Any]:
        return {"kind": "generator", **self.info}

    def _labels(self, start: int, n: int, seed: int) -> torch.Tensor:
        ids = np.asarray(self.class_ids, dtype=np.int64)
        if self.labels == "cycle":
            pick = ids[np.arange(start, start + n) % len(ids)]
        else:
            pick = ids[
                np.random.Generator(np.random.PCG64(derive_seed(seed, "labels"))).integers(0, len(ids), n)
            ]
        return torch.from_numpy(pick).to(self.device)

    def batches(self, task: ShardTask) -> Iterator[Batch]:
        for j, (off, n) in enumerate(task.spans()):
            seed = task.batch_seed(j)
            labels = self._labels(task.start + off, n, seed)
            with torch.inference_mode():
                batch = self.generator.generate(labels, n, torch_rng(seed, "generate", device=self.device))
                if batch.batch_size != n:
                    raise ValueError(
                        f"generator {self.info.get('name')} returned {batch.batch_size} rows for n={n}"
                    )
                if batch.label is None:
                    batch = batch.replace(label=labels.to(batch.device))
                base = [
                    {"generator": self.info, "condition": c, "seed": seed, "row": r}
                    for r, c in enumerate(labels.tolist())
                ]
                out, ops = apply_pipeline(self.pipeline, batch, seed)
            yield out.replace(meta={**out.meta, "provenance": provenance_rows(out, base, ops)})


class DatasetSource:
    """Rows of a labeled image set in a seeded order, then the pipeline.

    Args:
        images: ``[N, H, W, C]`` uint8. labels: ``[N]`` int. name: for provenance.
        order: ``shuffle`` (a seeded permutation per pass over the set) or ``sequential``.
        pipeline: a callable ``(Batch, rng=...) -> Batch``, or None (images are written as they are).
        device: where the pipeline runs.

    Example:
        >>> from augmentgen.data import load_digits
        >>> ds = load_digits("train")
        >>> src = DatasetSource(ds.images, ds.labels, name=ds.name)
        >>> next(src.batches(ShardTask.make(0, size=4, base_seed=0, batch_size=4))).image.shape
        torch.Size([4, 1, 8, 8])
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        name: str = "dataset",
        order: str = "shuffle",
        pipeline: PipelineFn | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(
                f"DatasetSource '{name}': images must be uint8 [N, H, W, C], got {getattr(images, 'shape', images)}"
            )
        if images.shape[-1] not in (1, 3) or len(images) == 0:
            raise ValueError(
                f"DatasetSource '{name}': need N >= 1 images with C in (1, 3), got {images.shape}"
            )
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (len(images),):
            raise ValueError(f"DatasetSource '{name}': labels must be [N]={len(images)}, got {labels.shape}")
        if order not in ("shuffle", "sequential"):
            raise ValueError(f"DatasetSource.order must be 'shuffle' or 'sequential', got {order!r}")
        self.images, self.labels, self.name, self.order = images, labels, name, order
        self.pipeline, self.device = pipeline, torch.device(device)
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def describe(self) -> dict[str, Any]:
        h = hashlib.sha256(np.ascontiguousarray(self.images).data)
        h.update(self.labels.tobytes())
        return {"kind": "dataset", "name": self.name, "samples": len(self.images), "sha256": h.hexdigest()}

    def indices(self, start: int, n: int, base_seed: int) -> np.ndarray:
        """Data set rows of global samples ``start .. start + n - 1`` (pass ``g // N`` uses its own permutation)."""
        g = np.arange(start, start + n, dtype=np.int64)
        size = len(self.images)
        if self.order == "sequential":
            return g % size
        out = np.empty(n, dtype=np.int64)
        for epoch in np.unique(g // size):
            key = (base_seed, int(epoch))
            if key not in self._perms:
                if len(self._perms) > 4:
                    self._perms.clear()
                seed = derive_seed(base_seed, "order", int(epoch))
                self._perms[key] = np.random.Generator(np.random.PCG64(seed)).permutation(size)
            sel = g // size == epoch
            out[sel] = self._perms[key][g[sel] % size]
        return out

    def batches(self, task: ShardTask) -> Iterator[Batch]:
        for j, (off, n) in enumerate(task.spans()):
            seed = task.batch_seed(j)
            idx = self.indices(task.start + off, n, task.base_seed)
            image = torch.from_numpy(self.images[idx]).permute(0, 3, 1, 2)  # [B, C, H, W] uint8
            batch = Batch(image=image, label=torch.from_numpy(self.labels[idx]))
            base = [
                {"source": self.name, "source_index": i, "condition": c, "seed": seed, "row": r}
                for r, (i, c) in enumerate(zip(idx.tolist(), self.labels[idx].tolist()))
            ]
            if self.pipeline is not None:
                batch = batch.to(self.device).as_float()
            with torch.inference_mode():
                out, ops = apply_pipeline(self.pipeline, batch, seed)
            yield out.replace(meta={**out.meta, "provenance": provenance_rows(out, base, ops)})
