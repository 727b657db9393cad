"""DataLoader helpers whose augmented epochs do not depend on the number of workers.

The random stream of sample ``i`` in epoch ``e`` is ``(seed, e, i)``, drawn where the sample
is made; worker ids, worker seeds and process-global RNG never enter. ``EpochSampler``
carries the epoch from the main process to the workers inside each index, so this holds
with ``persistent_workers=True`` too, where ``dataset.set_epoch`` would not reach them.

Example:
    >>> loader = make_loader(dataset, Pipeline([...]), seed=0, batch_size=64, num_workers=2)  # doctest: +SKIP
    >>> for epoch in range(3):
    ...     for images, labels in loader: ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from augmentgen.core.batch import Batch, Boxes
from augmentgen.core.rng import derive_seed, reused_sample_rng, torch_rng
from augmentgen.pipeline.compose import Pipeline

_SPLIT_MIN_PIXELS = 64 * 64
_SPLIT_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.float32, np.float64))


def split_pays(h: int, w: int, c: int, dtype: np.dtype) -> bool:
    """Whether ``cv2.split`` into planes beats numpy's strided transpose copy for such an image."""
    return 2 <= c <= 4 and h * w >= _SPLIT_MIN_PIXELS and dtype in _SPLIT_DTYPES


def hwc_to_chw(arr: np.ndarray) -> Tensor:
    """A contiguous ``[C, H, W]`` tensor of an ``[H, W, C]`` (or ``[H, W]``) array.

    Large 2-4 channel images are de-interleaved by ``cv2.split`` straight into the tensor's
    planes (~18 us at 224x224x3 here, against ~70 us for numpy's strided transpose copy).
    """
    if arr.ndim == 2:
        return _writable_tensor(np.ascontiguousarray(arr)).unsqueeze(0)
    h, w, c = arr.shape
    if split_pays(h, w, c, arr.dtype):
        planes = np.empty((c, h, w), arr.dtype)
        cv2.split(np.ascontiguousarray(arr), [planes[k] for k in range(c)])
        return torch.from_numpy(planes)
    return _writable_tensor(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _writable_tensor(arr: np.ndarray) -> Tensor:
    # A read-only array (``np.asarray`` of a PIL image) is copied: a tensor sharing it would let
    # the training code write into memory it does not own, and torch warns about it in every worker.
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


def stack_chw(images: Sequence[np.ndarray]) -> Tensor:
    """Same-shape ``[H, W, C]`` (or ``[H, W]``) arrays as one contiguous ``[B, C, H, W]`` tensor.

    Large 2-4 channel images are de-interleaved by ``cv2.split`` straight into the batch's
    planes, small ones stacked and transposed in one pass: at 224x224x3 about a third of the CPU
    of ``torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()``.

    Example:
        >>> stack_chw([np.zeros((4, 5, 3), np.uint8)] * 2).shape
        torch.Size([2, 3, 4, 5])
    """
    if not images or images[0].ndim not in (2, 3):
        raise ValueError(f"stack_chw: need [H, W] or [H, W, C] images, got {len(images)} of {images[0].shape if images else '-'}")
    first = images[0]
    h, w = first.shape[:2]
    c = first.shape[2] if first.ndim == 3 else 1
    if split_pays(h, w, c, first.dtype):
        out = np.empty((len(images), c, h, w), first.dtype)
        for i, im in enumerate(images):
            if im.shape != first.shape or im.dtype != first.dtype:
                raise ValueError(f"stack_chw: image {i} is {im.shape} {im.dtype}, image 0 {first.shape} {first.dtype}")
            cv2.split(np.ascontiguousarray(im), [out[i, k] for k in range(c)])
        return torch.from_numpy(out)
    odd = next((i for i, im in enumerate(images) if im.shape != first.shape), None)
    if odd is not None:
        raise ValueError(f"stack_chw: image {odd} is {images[odd].shape}, image 0 {first.shape}: images must share one shape")
    block = np.stack(images)
    if c == 1:  # [B, H, W(, 1)] and [B, 1, H, W] are the same bytes
        return torch.from_numpy(block).reshape(len(images), 1, h, w)
    return torch.from_numpy(np.ascontiguousarray(block.transpose(0, 3, 1, 2)))


def _chw_batch(outs: list[Any]) -> list[Any]:
    """Small same-shape HWC arrays turned into CHW tensors in one transpose (views of one block).

    Per image, numpy's strided transpose costs more than the copy; for a whole batch it is
    one pass. Other outputs are returned as they are (``_convert`` handles them one by one).
    """
    first = outs[0]
    if not (isinstance(first, np.ndarray) and first.ndim == 3 and first.shape[0] * first.shape[1] < _SPLIT_MIN_PIXELS):
        return outs
    if not all(isinstance(o, np.ndarray) and o.shape == first.shape and o.dtype == first.dtype for o in outs):
        return outs
    return list(stack_chw(outs).unbind(0))


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)`` pairs, shuffled per epoch from ``(seed, epoch)``; the epoch advances per pass.

    Args:
        n: data set length.
        shuffle: permute indices each epoch.
        seed: base seed of the permutation.
        start_epoch: the epoch of the first pass.
        rank, world_size: keep every ``world_size``-th index starting at ``rank`` (DDP).
    """

    def __init__(
        self, n: int, *, shuffle: bool = True, seed: int = 0, start_epoch: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if n < 0 or not 0 <= rank < world_size:
            raise ValueError(f"EpochSampler: bad n={n}, rank={rank}, world_size={world_size}")
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.epoch = start_epoch
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.epoch += 1
        if self.shuffle:
            order = np.random.Generator(np.random.PCG64(derive_seed(self.seed, "shuffle", epoch))).permutation(self.n)
        else:
            order = np.arange(self.n)
        for i in order[self.rank :: self.world_size]:
            yield epoch, int(i)


class AugmentedDataset(Dataset[Any]):
    """Wrap ``dataset`` so item ``i`` is augmented with the stream ``(seed, epoch, i)``.

    Args:
        dataset: items are an image, ``(image, label)``, or a dict with ``image``.
        pipeline: applied per sample (numpy/PIL take the OpenCV path).
        seed: base seed of the augmentation streams.
        output: ``"tensor"`` gives a CHW tensor of the image's dtype (uint8 stays uint8: cheap to
            pass between processes; convert on the device), ``"float"`` CHW float32 in [0, 1],
            ``"same"`` whatever the pipeline returns.

    Indexing with an int uses ``self.epoch``; indexing with ``(epoch, i)`` (from
    ``EpochSampler``) uses that epoch.
    """

    def __init__(self, dataset: Any, pipeline: Pipeline, seed: int = 0, *, output: str = "tensor") -> None:
        if output not in ("tensor", "float", "same"):
            raise ValueError(f"AugmentedDataset.output must be 'tensor', 'float' or 'same', got {output!r}")
        self.dataset, self.pipeline, self.seed, self.output = dataset, pipeline, seed, output
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def _convert(self, img: Any) -> Any:
        if self.output == "same":
            return img
        if isinstance(img, np.ndarray):
            t = hwc_to_chw(img)
        elif isinstance(img, Tensor):
            t = img
        else:  # PIL
            t = hwc_to_chw(np.asarray(img))
        if self.output == "float" and not t.is_floating_point():
            t = t.to(torch.float32) / 255.0
        return t

    def _batched(self) -> bool:
        b = self.__dict__.get("_vectorizable")
        if b is None:
            from augmentgen.pipeline.many import vectorizable

            b = self.__dict__["_vectorizable"] = vectorizable(self.pipeline)
        return bool(b)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if self._batched():
            return self.__getitems__([key])[0]
        epoch, i = (key if isinstance(key, tuple) else (self.epoch, key))
        item = self.dataset[i]
        rng = reused_sample_rng(self.seed, epoch, i)
        if isinstance(item, dict):
            out = self.pipeline(item, rng=rng)
            out["image"] = self._convert(out["image"])
            return out
        if isinstance(item, tuple):
            return (self._convert(self.pipeline(item[0], rng=rng)), *item[1:])
        return self._convert(self.pipeline(item, rng=rng))

    def __getitems__(self, keys: Sequence[int | tuple[int, int]]) -> list[Any]:
        """A whole batch of items: the DataLoader's fetcher calls this with a batch's indices.

        Item ``i`` of epoch ``e`` is the same as ``self[(e, i)]`` alone: its parameters come
        from its own stream whatever the batch, and are drawn for the batch in one pass.
        """
        if not self._batched():
            return [self[k] for k in keys]
        pairs = [(k if isinstance(k, tuple) else (self.epoch, k)) for k in keys]
        items = [self.dataset[i] for _, i in pairs]
        ins = [it[0] if isinstance(it, tuple) else it for it in items]
        outs = self.pipeline.map_samples(
            ins, seed=self.seed, epoch=[e for e, _ in pairs], indices=[i for _, i in pairs]
        )
        res: list[Any] = []
        if self.output == "tensor" and not isinstance(outs[0], dict):
            outs = _chw_batch(outs)
        for it, out in zip(items, outs):
            if isinstance(out, dict):
                out["image"] = self._convert(out["image"])
                res.append(out)
            elif isinstance(it, tuple):
                res.append((self._convert(out), *it[1:]))
            else:
                res.append(self._convert(out))
        return res


class BatchAugment:
    """An on-device stage after collate: ``batch k`` of ``epoch`` uses the stream ``(seed, epoch, k)``.

    Batches hold the same indices whatever the worker count (the sampler is seeded), so the
    output is independent of it. uint8 images are converted to float32 in [0, 1] first.
    """

    def __init__(self, pipeline: Pipeline, seed: int = 0) -> None:
        self.pipeline, self.seed = pipeline, seed

    def __call__(self, batch: Batch | Tensor, *, epoch: int, step: int, labels: Tensor | None = None) -> Any:
        b = batch if isinstance(batch, Batch) else Batch(batch, label=labels)
        b = b.as_float()
        rng = torch_rng(self.seed, "batch", epoch, step, device=b.device)
        out = self.pipeline(b, rng=rng)
        return out if isinstance(batch, Batch) else out.image


def collate_batch(items: Sequence[Any]) -> Batch:
    """Collate ``(image CHW tensor, label)`` items into a ``Batch``."""
    images = torch.stack([it[0] if isinstance(it, tuple) else it for it in items])
    labels = None
    if isinstance(items[0], tuple) and len(items[0]) > 1:
        labels = torch.as_tensor([int(it[1]) for it in items])
    return Batch(images, label=labels)


def _image_shape(item: Any) -> tuple[int, ...] | None:
    img = item.get("image") if isinstance(item, dict) else item[0] if isinstance(item, tuple) else item
    shape = getattr(img, "shape", None)
    return None if shape is None else tuple(shape)


def collate_detection(items: Sequence[dict[str, Any]]) -> Batch:
    """Dict samples with ``boxes`` (any count each) as one ``Batch``: boxes padded, with a ``valid`` mask.

    ``image`` CHW tensors (what ``AugmentedDataset`` makes) are stacked; ``boxes`` ``[N_i, 4]``
    and ``box_labels`` ``[N_i]`` become ``Boxes`` ``[B, max N, 4]``; ``label`` when every item
    has one; ``masks`` (``[1, H, W]`` instance ids, or ``mask`` ``[H, W]``) when every item has
    them; other keys (``image_id``, ``file``, ...) go to ``meta`` as lists. The mix ops
    (``mosaic``, ``copy_paste``, ``mixup``) take this batch after collate.

    Example:
        >>> b = collate_detection([{"image": torch.zeros(3, 4, 4), "boxes": [[0, 0, 2, 2]], "image_id": 7},
        ...                        {"image": torch.zeros(3, 4, 4), "boxes": torch.zeros(0, 4), "image_id": 8}])
        >>> b.boxes.valid.tolist(), b.meta["image_id"]
        ([[True], [False]], [7, 8])
    """
    images = torch.stack([torch.as_tensor(it["image"]) for it in items])
    xyxy = [
        torch.as_tensor(np.asarray(it["boxes"] if it.get("boxes") is not None else [], np.float32)).reshape(-1, 4)
        for it in items
    ]
    labels = [
        torch.as_tensor(np.asarray(it["box_labels"] if it.get("box_labels") is not None else np.full(len(b), -1)))
        .reshape(-1)
        .to(torch.int64)
        for it, b in zip(items, xyxy, strict=True)
    ]
    label = None
    if all(it.get("label") is not None for it in items):
        label = torch.as_tensor([int(it["label"]) for it in items], dtype=torch.int64)
    masks = None
    planes = [it.get("masks", it.get("mask")) for it in items]
    if all(m is not None for m in planes):
        ms = [torch.as_tensor(np.asarray(m)) for m in planes]
        masks = torch.stack([m[None] if m.ndim == 2 else m for m in ms])
    skip = {"image", "boxes", "box_labels", "label", "masks", "mask", "box_valid"}
    meta = {k: [it.get(k) for it in items] for k in items[0] if k not in skip}
    return Batch(image=images, label=label, boxes=Boxes.from_list(xyxy, labels), masks=masks, meta=meta)


def default_collate_named(items: Sequence[Any]) -> Any:
    """torch's ``default_collate``, with images of several sizes in one batch named as such.

    What ``make_loader`` collates with unless given ``collate_fn``: dict samples with
    ``boxes`` go to ``collate_detection`` (a ``Batch`` with padded boxes); torch's own message
    for mismatched images ("stack expects each tensor to be equal size") names neither the
    images nor the fix.
    """
    shapes = [_image_shape(it) for it in items]
    odd = next((i for i, sh in enumerate(shapes) if sh != shapes[0]), None)
    if odd is not None:
        raise ValueError(
            f"make_loader: image {odd} of the batch is {shapes[odd]}, image 0 {shapes[0]}: a batch needs one "
            "size; end the pipeline with resize, center_crop, random_crop or random_resized_crop to one "
            "size (or pass collate_fn= to keep them apart)"
        )
    if isinstance(items[0], dict) and items[0].get("boxes") is not None:
        return collate_detection(items)
    return default_collate(list(items))


def make_loader(
    dataset: Any,
    pipeline: Pipeline,
    *,
    seed: int = 0,
    batch_size: int = 64,
    shuffle: bool = True,
    num_workers: int = 0,
    output: str = "tensor",
    collate_fn: Callable[[Sequence[Any]], Any] | None = None,
    **loader_kwargs: Any,
) -> DataLoader[Any]:
    """A DataLoader over ``AugmentedDataset(dataset, pipeline, seed)`` with an ``EpochSampler``."""
    ds = AugmentedDataset(dataset, pipeline, seed, output=output)
    sampler = EpochSampler(len(ds), shuffle=shuffle, seed=seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn or default_collate_named,
        **loader_kwargs,
    )
