"""Real and synthetic samples in one stream at an exact ratio: ``MixedDataset`` for a DataLoader, ``mix`` for two iterables.

Real data sets come in the forms PyTorch users have (an ``ArrayDataset``, a torchvision-style
data set of ``(image, label)``, a list of sample dicts, an iterable) and leave as the shards'
samples do, so one collate function takes both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset

from augmentgen.core.rng import derive_seed
from augmentgen.shards.reader import ShardDataset, consumer


def real_image(x: Any, where: str) -> np.ndarray:
    """An image as a real data set hands it out (PIL, HW/HWC numpy, CHW tensor) -> HWC uint8, as shards decode.

    Floats are read as [0, 1] (what ``ToTensor`` gives) and rounded to 8 bits.

    Example:
        >>> real_image(torch.ones(1, 2, 3), "item 0").shape, real_image(np.zeros((2, 3), np.uint8), "x").shape
        ((2, 3, 1), (2, 3, 1))
    """
    from PIL import Image

    if isinstance(x, Image.Image):
        x = np.asarray(x if x.mode in ("L", "RGB") else x.convert("RGB"))
    elif isinstance(x, torch.Tensor):
        if x.ndim != 3:
            raise ValueError(f"{where}: a tensor image must be CHW, got shape {tuple(x.shape)}")
        x = x.detach().cpu().permute(1, 2, 0).numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: expected an image (PIL, numpy HWC or tensor CHW), got {type(x).__name__}")
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[2] not in (1, 3):
        raise ValueError(f"{where}: an image must be HW, HWC or CHW with 1 or 3 channels, got shape {x.shape}")
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{where}: image pixels must be uint8 or float in [0, 1], got {x.dtype}")
        x = np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(x)


def _real_sample(item: Any, i: int, where: str) -> dict[str, Any]:
    """One real item (a sample dict, ``(image, label, ...)`` or a bare image) as a sample dict like the shards'."""
    key, meta = f"real-{i}", {"source": "real", "source_index": i}
    if isinstance(item, dict):
        if "image" not in item:
            raise ValueError(f"{where}: a sample dict needs an 'image' key, got keys {sorted(item)}")
        label = item.get("label")
        return {**item, "__key__": item.get("__key__", key), "image": real_image(item["image"], where),
                "label": None if label is None else int(label), "meta": {**meta, **(item.get("meta") or {})}}  # fmt: skip
    if isinstance(item, (tuple, list)):
        if not item:
            raise ValueError(f"{where}: an empty item")
        label = item[1] if len(item) > 1 else None
        return {"__key__": key, "image": real_image(item[0], where),
                "label": None if label is None else int(label), "meta": meta}  # fmt: skip
    return {"__key__": key, "image": real_image(item, where), "label": None, "meta": meta}


def _real_samples(real: Any, seed: int, epoch: int) -> Iterator[dict[str, Any]]:
    """The real samples of one epoch for this reader: shuffled and split across consumers when ``real``
    can be indexed (an ``ArrayDataset``, a map-style ``Dataset``, a list); an iterable is read as it is."""
    item: Callable[[int], dict[str, Any]]
    if hasattr(real, "images") and hasattr(real, "labels"):  # an ArrayDataset: already HWC uint8
        n = len(real.images)

        def item(i: int) -> dict[str, Any]:
            meta = {"source": "real", "source_index": i}
            return {"__key__": f"real-{i}", "image": real.images[i], "label": int(real.labels[i]), "meta": meta}

    elif hasattr(real, "__len__") and hasattr(real, "__getitem__"):
        n = len(real)

        def item(i: int) -> dict[str, Any]:
            return _real_sample(real[i], i, f"MixedDataset: real item {i}")

    else:
        for i, it in enumerate(real):
            yield _real_sample(it, i, f"MixedDataset: real item {i}")
        return
    me, count = consumer()
    order = np.random.Generator(np.random.PCG64(derive_seed(seed, epoch, "real"))).permutation(n)
    for i in order[me::count]:
        yield item(int(i))


class MixedDataset(IterableDataset[dict[str, Any]]):
    """Real and synthetic samples interleaved so that ``floor(k * ratio)`` of the first ``k`` are synthetic.

    An epoch is one pass over ``real``; the synthetic stream restarts with its next epoch's
    order if it runs out first.

    Args:
        real: an ``ArrayDataset`` (``images`` uint8 HWC, ``labels``), a map-style data set or list
            whose items are ``(image, label)`` (a torchvision data set), sample dicts or bare
            images (PIL, HWC numpy, CHW tensor; floats in [0, 1]), all shuffled per epoch and split
            across DataLoader workers and DDP ranks; or an iterable of those, read as it comes (it
            splits itself). Real items come out as the shards' samples do: ``image`` HWC uint8,
            ``label`` int or None, ``__key__`` ``real-{index}``, ``meta`` ``{"source": "real", ...}``.
        synthetic: a ``ShardDataset`` yielding sample dicts.
        ratio: share of synthetic samples in [0, 1).

    Example:
        >>> mixed = MixedDataset(load_digits("train"), load("out/digits", shuffle=512), ratio=0.5)  # doctest: +SKIP
    """

    def __init__(self, real: Any, synthetic: ShardDataset, ratio: float, *, seed: int = 0) -> None:
        super().__init__()
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"MixedDataset.ratio must be in [0, 1), got {ratio}")
        if synthetic.batch_size is not None:
            raise ValueError("MixedDataset: give a ShardDataset without batch_size (it mixes samples)")
        self.real, self.synthetic, self.ratio, self.seed = real, synthetic, float(ratio), seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.synthetic.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        syn_epoch = self.epoch

        def synthetic() -> Iterator[dict[str, Any]]:  # endless: the next epoch's order when one runs out
            nonlocal syn_epoch
            while True:
                self.synthetic.set_epoch(syn_epoch)
                got = False
                for s in self.synthetic.samples():
                    got = True
                    yield s
                if not got:
                    raise ValueError("MixedDataset: the synthetic shards hold no samples for this reader")
                syn_epoch += 1

        # the synthetic stream never ends, so the mix ends with the real epoch
        yield from mix(_real_samples(self.real, self.seed, self.epoch), synthetic(), self.ratio)


def mix(
    real: Iterable[dict[str, Any]], synthetic: Iterable[dict[str, Any]], ratio: float
) -> Iterator[dict[str, Any]]:
    """Interleave two sample streams with an exact running synthetic share ``ratio``; ends when either ends.

    Example:
        >>> out = list(mix(iter([{"r": i} for i in range(3)]), iter([{"s": i} for i in range(9)]), 0.5))
        >>> [("s" in x) for x in out]
        [False, True, False, True, False, True]
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mix: ratio must be in [0, 1), got {ratio}")
    real_it, syn_it = iter(real), iter(synthetic)
    k = 0
    while True:
        src = syn_it if int((k + 1) * ratio) > int(k * ratio) else real_it
        s = next(src, None)
        if s is None:
            return
        yield s
        k += 1
