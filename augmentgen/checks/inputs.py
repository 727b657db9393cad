"""What ``augmentgen check`` reads: a shard folder or a generator folder (generated side), a named source (real side).

Shards are read by ``augmentgen.data.webdataset`` with plain ``webdataset`` (members
``*.png``/``*.jpg`` image, ``cls`` label); a folder with ``manifest.json`` contributes only
the shards it lists as done.
A generator folder (``config.json`` + ``model.safetensors``) is loaded through
``core.registry.GENERATORS`` by its ``kind`` and sampled class-balanced under a seed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augmentgen.core.registry import GENERATORS
from augmentgen.core.rng import torch_rng
from augmentgen.data.sources import ArrayDataset, load_digits, load_fashion_mnist, load_image_folder
from augmentgen.data.webdataset import read_webdataset

logger = logging.getLogger(__name__)



def load_real(spec: str) -> ArrayDataset:
    """A real data set by name: ``fashion-mnist[:train|:test]``, ``digits[:train|:test|:all]``, an image folder, or a shard folder.

    Example:
        >>> len(load_real("digits:test"))
        359
    """
    name, _, split = spec.partition(":")
    if name in ("fashion-mnist", "fashion_mnist", "fmnist"):
        return load_fashion_mnist(split or "train")
    if name == "digits":
        return load_digits(split or "train")
    p = Path(spec)
    if p.is_dir():
        if any(p.glob("*.tar")):
            images, labels = read_shards(p)
            n = int(labels.max()) + 1 if labels.size else 0
            return ArrayDataset(images, labels, [str(i) for i in range(n)], f"shards:{p.name}")
        return load_image_folder(p)
    raise ValueError(
        f"--real {spec!r}: not a known source (fashion-mnist[:split], digits[:split]) nor an existing folder"
    )


def read_shards(folder: str | Path, *, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, H, W, C]`` uint8 and labels ``[N]`` int64 from the WebDataset tars of ``folder``.

    Args:
        folder: an output folder of ``augmentgen run`` (or any folder of ``.tar`` shards).
        limit: stop after this many samples.
    """
    return read_webdataset(folder, limit=limit)


def is_generator_folder(path: str | Path) -> bool:
    p = Path(path)
    return (p / "config.json").is_file() and (p / "model.safetensors").is_file()


def load_generator_model(folder: str | Path, *, device: str = "cpu") -> Any:
    """The generator saved in ``folder``, built by the class its ``config.json`` ``kind`` names in ``GENERATORS``.

    The caller imports the package that registers it (``augmentgen.generators``; the CLI does).
    """
    p = Path(folder)
    try:
        kind = str(json.loads((p / "config.json").read_text())["kind"])
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{p / 'config.json'}: cannot read the generator kind ({e})") from e
    if kind not in GENERATORS:
        raise ValueError(
            f"{p}: generator kind '{kind}' is not registered (known: {GENERATORS.names()}); "
            "import the package that defines it, e.g. augmentgen.generators"
        )
    return GENERATORS.get(kind).from_pretrained(p, device=device)


def sample_generator(
    model: Any,
    n: int,
    classes: list[str],
    *,
    seed: int = 0,
    device: str = "cpu",
    chunk: int = 1000,
    name: str = "generator",
) -> ArrayDataset:
    """``n`` class-balanced samples (labels ``i % K``) of ``model``, quantised to uint8 as a PNG shard would hold them."""
    k = len(classes)
    if getattr(model, "num_classes", k) != k:
        raise ValueError(f"{name} has {model.num_classes} classes, the real data has {k}")
    labels = torch.arange(n) % k
    parts = []
    for s in range(0, n, chunk):
        cond = labels[s : s + chunk]
        batch = model.generate(cond, int(cond.numel()), torch_rng(seed, "check", s, device=device))
        img = batch.image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
        parts.append(img.permute(0, 2, 3, 1).numpy())
    return ArrayDataset(np.concatenate(parts), labels.numpy(), list(classes), name)


def load_generated(
    path: str | Path, classes: list[str], *, n: int | None = None, seed: int = 0, device: str = "cpu"
) -> ArrayDataset:
    """Generated samples from a shard folder or a generator folder (``n`` defaults to 10,000 for generators)."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p} does not exist")
    if is_generator_folder(p):
        model = load_generator_model(p, device=device)
        return sample_generator(
            model, n or 10_000, classes, seed=seed, device=device, name=f"generator:{p.name}"
        )
    if p.is_dir():
        images, labels = read_shards(p, limit=n)
        if labels.size and int(labels.max()) >= len(classes):
            raise ValueError(
                f"{p}: labels reach {int(labels.max())}, the real data has {len(classes)} classes"
            )
        return ArrayDataset(images, labels, list(classes), f"shards:{p.name}")
    raise ValueError(
        f"{p}: expected a shard folder (*.tar) or a generator folder (config.json + model.safetensors)"
    )
