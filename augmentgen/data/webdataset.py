"""Labelled images from WebDataset tar shards: real data kept as shards, and the shards augmentgen writes.

Read with the ``webdataset`` library itself. A sample needs one image member (``png``,
``jpg``, ``jpeg``, ``webp``, under any prefix: ``image.png``, ``jpg``, ...; a ``mask*`` member
is not the image) and a ``cls`` member holding an integer label. A folder with a
``manifest.json`` (one ``augmentgen generate`` wrote) contributes only the shards it lists as
done; any other folder, every ``*.tar`` in it, in name order.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augmentgen.data.sources import ArrayDataset

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")


def shard_files(folder: str | Path) -> list[Path]:
    """The tars of ``folder``: those ``manifest.json`` lists as done, else every ``*.tar`` by name."""
    root = Path(folder)
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
            shards = m.get("shards", {})
            return [root / shards[k]["file"] for k in sorted(shards, key=int) if shards[k].get("state") == "done"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{manifest}: cannot read the list of shards ({e})") from e
    return sorted(root.glob("*.tar"))


def decode_image_bytes(data: bytes, where: str) -> np.ndarray:
    """PNG / JPEG / WebP bytes -> ``[H, W, 1]`` (gray sources) or ``[H, W, 3]`` uint8; a ValueError naming ``where``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("L") if im.mode in ("L", "LA", "I;16", "1") else im.convert("RGB"))
    except OSError as e:
        raise ValueError(f"{where}: image does not decode ({e})") from e
    return arr[..., None] if arr.ndim == 2 else arr


def check_tar_end(path: Path) -> None:
    """A ValueError naming ``path`` unless it is a whole tar: headers, lengths, end marker, zeros after it.

    Python's ``tarfile`` (and so webdataset) reads a tar cut short at a member boundary, or one
    with a member header zeroed, as a smaller tar without a word, so a copy that stopped half
    way would pass as a smaller data set. ``walk_tar`` reads only the headers (a seek a member).
    """
    from augmentgen.shards.tario import walk_tar

    size = path.stat().st_size
    if size < 1024 or size % 512:
        raise ValueError(f"{path}: truncated or not a tar ({size} bytes, not whole 512-byte blocks)")
    with path.open("rb") as f:
        f.seek(size - 1024)
        if f.read(1024).strip(b"\0"):
            raise ValueError(f"{path}: truncated (no end-of-archive marker): copy or write it again")
        walk_tar(f, str(path))


def _samples(files: Sequence[Path]) -> Iterator[dict[str, Any]]:
    """Every sample of ``files`` in order, through webdataset, one tar at a time (so an error names its tar)."""
    import tarfile

    import webdataset as wds

    for f in files:
        check_tar_end(f)
        try:
            yield from wds.WebDataset([str(f)], shardshuffle=False, empty_check=False)
        except (tarfile.TarError, EOFError) as e:
            raise ValueError(f"{f}: not a readable tar ({type(e).__name__}: {e})") from e


def labelled_samples(files: Sequence[Path]) -> Iterator[tuple[str, int, str, bytes]]:
    """``(where, label, image member name, image bytes)`` of every sample of ``files``, in order.

    Each tar is checked whole (``check_tar_end``) before it is read; a sample without an image
    member or an integer ``cls`` is a ValueError naming its tar and key.
    """
    for sample in _samples(files):
        key = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"
        ext = next((k for k in sample if k.rsplit(".", 1)[-1] in IMAGE_EXTS and not k.startswith("mask")), None)
        if ext is None:
            raise ValueError(f"{key}: sample has no image member (members: {sorted(sample)})")
        if "cls" not in sample:
            raise ValueError(f"{key}: sample has no 'cls' member (the integer label)")
        try:
            label = int(sample["cls"])
        except ValueError as e:
            raise ValueError(f"{key}: 'cls' is not an integer ({sample['cls']!r})") from e
        yield key, label, ext, sample[ext]


def read_webdataset(
    source: str | Path | Sequence[str | Path],
    *,
    limit: int | None = None,
    size: int | None = None,
    mode: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, H, W, C]`` uint8 and labels ``[N]`` int64 from WebDataset tars.

    Args:
        source: a folder (``shard_files``) or a list of tar paths.
        limit: stop after this many samples.
        size: resize every image to ``size x size`` as it is decoded (shards of several sizes).
        mode: ``"L"`` or ``"RGB"``: convert every image; None keeps what each decodes to.

    Example:
        >>> images, labels = read_webdataset("runs/main/shards/cgan")  # doctest: +SKIP
    """
    from augmentgen.data.sources import conform

    files = shard_files(source) if isinstance(source, (str, Path)) else [Path(f) for f in source]
    if not files:
        raise ValueError(f"{source}: no shards (*.tar, or done entries in manifest.json)")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for key, label, ext, data in labelled_samples(files):
        labels.append(label)
        img = decode_image_bytes(data, f"{key}.{ext}")
        if size is not None or mode is not None:
            one = ArrayDataset(img[None], np.zeros(1, np.int64), ["x"], key)
            img = conform(one, size=size, mode=mode).images[0]
        images.append(img)
        if limit is not None and len(images) >= limit:
            break
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise ValueError(f"{source}: shards hold images of several shapes {sorted(shapes)}; give size= to resize")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load_webdataset(
    source: str | Path | Sequence[str | Path],
    *,
    size: int | None = None,
    mode: str | None = None,
    classes: Sequence[str] | None = None,
) -> ArrayDataset:
    """An ``ArrayDataset`` of WebDataset tars (``read_webdataset``); classes named ``0..K-1`` unless given.

    Example:
        >>> ds = load_webdataset("shards/photos/", size=32)  # doctest: +SKIP
    """
    images, labels = read_webdataset(source, size=size, mode=mode)
    n = int(labels.max()) + 1 if labels.size else 0
    names = [str(i) for i in range(n)] if classes is None else list(classes)
    if len(names) < n:
        raise ValueError(f"{source}: labels go up to {n - 1} but {len(names)} class names were given")
    label = Path(source).name if isinstance(source, (str, Path)) else f"{len(source)} tars"
    return ArrayDataset(images, labels, names, f"webdataset:{label}")
