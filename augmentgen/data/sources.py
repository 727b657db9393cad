"""Labeled image sources held in memory: Fashion-MNIST, scikit-learn digits, image folders; subsets and splits.

Every source returns an ``ArrayDataset``: ``uint8 [N, H, W, C]`` images (C=1 for gray),
``int64 [N]`` labels and the class names. It is a ``torch.utils.data.Dataset`` for the
per-sample path and turns into a ``core.Batch`` with ``to_batch``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from augmentgen.core.batch import Batch
from augmentgen.data.idx import read_idx

logger = logging.getLogger(__name__)

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


@dataclass
class ArrayDataset(Dataset[tuple[np.ndarray, int]]):
    """An in-memory labeled image set.

    Args:
        images: ``[N, H, W, C]`` uint8, C is 1 (gray) or 3 (RGB).
        labels: ``[N]`` int64 class ids in ``[0, len(classes))``.
        classes: class names, index = class id.
        name: where it came from, e.g. ``"fashion-mnist/train"``.

    Shape:
        ``ds[i]`` is ``(image [H, W, C] uint8, label int)``; ``to_batch()`` is a Batch of
        ``[N, C, H, W]`` float32 in [0, 1].

    Example:
        >>> ds = load_digits("train")
        >>> ds.to_batch([0, 1]).image.shape
        torch.Size([2, 1, 8, 8])
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str = "array"

    def __post_init__(self) -> None:
        if (
            not isinstance(self.images, np.ndarray)
            or self.images.ndim != 4
            or self.images.shape[-1] not in (1, 3)
        ):
            shape = getattr(self.images, "shape", type(self.images).__name__)
            raise ValueError(
                f"ArrayDataset '{self.name}': images must be [N, H, W, C] with C in (1, 3), got {shape}"
            )
        if self.images.dtype != np.uint8:
            raise TypeError(f"ArrayDataset '{self.name}': images must be uint8, got {self.images.dtype}")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"ArrayDataset '{self.name}': labels must be [N]={self.images.shape[0]}, got {self.labels.shape}"
            )
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(
                f"ArrayDataset '{self.name}': labels span [{self.labels.min()}, {self.labels.max()}] "
                f"but there are {len(self.classes)} classes"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.images[i], int(self.labels[i])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image as a tensor."""
        _, h, w, c = self.images.shape
        return int(c), int(h), int(w)

    def select(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> ArrayDataset:
        """Rows ``indices`` as a new ArrayDataset (copies)."""
        idx = np.asarray(indices, dtype=np.int64)
        return ArrayDataset(
            self.images[idx].copy(), self.labels[idx].copy(), list(self.classes), name or self.name
        )

    def to_batch(self, indices: Sequence[int] | np.ndarray | None = None, *, uint8: bool = False) -> Batch:
        """Rows ``indices`` (all when None) as a Batch: float32 ``[B, C, H, W]`` in [0, 1] (or uint8) and int64 labels."""
        imgs = self.images if indices is None else self.images[np.asarray(indices, dtype=np.int64)]
        labels = self.labels if indices is None else self.labels[np.asarray(indices, dtype=np.int64)]
        image = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2)
        if not uint8:
            image = image.to(torch.float32) / 255.0
        return Batch(image=image.contiguous(), label=torch.from_numpy(labels.copy()))

    def class_counts(self) -> np.ndarray:
        """``[num_classes]`` number of samples per class."""
        return np.bincount(self.labels, minlength=self.num_classes)


# ---- Fashion-MNIST ----------------------------------------------------------------------------


def _find_idx(directory: Path, stem: str) -> Path | None:
    for sub in (directory, directory / "FashionMNIST" / "raw", directory / "fashion-mnist"):
        for name in (stem + ".gz", stem):
            if (sub / name).is_file():
                return sub / name
    return None


def _has_network(
    host: str = "fashion-mnist.s3-website.eu-central-1.amazonaws.com", timeout: float = 3.0
) -> bool:
    try:
        with socket.create_connection((host, 80), timeout=timeout):
            return True
    except OSError:
        return False


def load_fashion_mnist(
    split: str = "train", root: str | Path | None = None, *, download: bool = True
) -> ArrayDataset:
    """Fashion-MNIST (Xiao et al. 2017), 28x28 gray, 10 classes, 60000 train / 10000 test.

    Looks in ``root``, then ``$AUGMENTGEN_DATA``, then ``/usr/share/datasets/fashion-mnist``
    (Debian ``dataset-fashion-mnist``), then downloads with torchvision where there is network.

    Args:
        split: ``"train"`` or ``"test"``.
        root: a folder holding the four idx files (``.gz`` or plain), or torchvision's layout.
        download: allow the torchvision download as the last resort.

    Example:
        >>> len(load_fashion_mnist("test"))
        10000
    """
    if split not in _FMNIST_FILES:
        raise ValueError(f"load_fashion_mnist: split must be 'train' or 'test', got {split!r}")
    img_stem, lab_stem = _FMNIST_FILES[split]
    candidates: list[tuple[str, Path]] = []
    if root is not None:
        candidates.append(("root argument", Path(root)))
    env = os.environ.get("AUGMENTGEN_DATA")
    if env:
        candidates.append(("$AUGMENTGEN_DATA", Path(env)))
    candidates.append(("Debian dataset-fashion-mnist", FASHION_MNIST_SYSTEM_DIR))
    looked: list[str] = []
    for why, directory in candidates:
        img, lab = _find_idx(directory, img_stem), _find_idx(directory, lab_stem)
        if img is not None and lab is not None:
            logger.info("Fashion-MNIST %s from %s", split, img.parent)
            return _from_idx(img, lab, f"fashion-mnist/{split}")
        looked.append(f"{directory} ({why})")
    if download:
        target = (
            Path(root) if root is not None else Path(env) if env else Path.home() / ".cache" / "augmentgen"
        )
        if _has_network():
            try:
                from torchvision.datasets import FashionMNIST

                tv = FashionMNIST(str(target), train=split == "train", download=True)
                imgs = tv.data.numpy().astype(np.uint8)[..., None]
                return ArrayDataset(
                    imgs, tv.targets.numpy(), list(FASHION_MNIST_CLASSES), f"fashion-mnist/{split}"
                )
            except Exception as e:  # noqa: BLE001 - any download failure ends in the error below
                looked.append(f"torchvision download into {target} (failed: {e})")
        else:
            looked.append(f"torchvision download into {target} (skipped: no network)")
    raise ValueError(
        f"Fashion-MNIST '{split}' files {img_stem}[.gz] and {lab_stem}[.gz] not found; looked in: "
        + "; ".join(looked)
        + ". Install the Debian package dataset-fashion-mnist or set AUGMENTGEN_DATA."
    )


def _from_idx(img_path: Path, lab_path: Path, name: str) -> ArrayDataset:
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{img_path}: expected [N, H, W] uint8 images, got {images.shape} {images.dtype}")
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"{lab_path}: {labels.shape[0] if labels.ndim else 0} labels for {images.shape[0]} images"
        )
    return ArrayDataset(images[..., None], labels.astype(np.int64), list(FASHION_MNIST_CLASSES), name)


# ---- scikit-learn digits ------------------------------------------------------------------------


def _stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with ``round(fraction * n_c)`` of each class held out."""
    keep: list[np.ndarray] = []
    held: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(fraction * len(idx)))
        held.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def load_digits(split: str = "train", test_fraction: float = 0.2, seed: int = 0) -> ArrayDataset:
    """scikit-learn's 1797 8x8 handwritten digits as uint8 0..255, split per class, deterministically.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        test_fraction: share of each class that goes to the test split.
        seed: seed of the split.

    Example:
        >>> len(load_digits("train")) + len(load_digits("test"))
        1797
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"load_digits: split must be 'train', 'test' or 'all', got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"load_digits: test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    images = np.clip(np.round(np.asarray(d.images) * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    labels = np.asarray(d.target, dtype=np.int64)
    ds = ArrayDataset(images, labels, [str(i) for i in range(10)], "digits/all")
    if split == "all":
        return ds
    train_idx, test_idx = _stratified_split(labels, test_fraction, np.random.default_rng(seed))
    return ds.select(train_idx if split == "train" else test_idx, name=f"digits/{split}")


# ---- image folders ------------------------------------------------------------------------------


def load_image_folder(
    path: str | Path, *, mode: str | None = None, size: tuple[int, int] | None = None
) -> ArrayDataset:
    """Images in ``path/<class name>/*.png|jpg|...``; classes sorted by name.

    Args:
        path: the root folder, one subfolder per class.
        mode: ``"L"`` (gray) or ``"RGB"``; None picks gray when every image is gray.
        size: ``(H, W)`` to resize to; None requires all images to share one size.

    Example:
        >>> ds = load_image_folder("photos/")  # doctest: +SKIP
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"load_image_folder: {root} is not a folder")
    if mode not in (None, "L", "RGB"):
        raise ValueError(f"load_image_folder: mode must be 'L', 'RGB' or None, got {mode!r}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"load_image_folder: {root} has no class subfolders")
    files: list[tuple[Path, int]] = []
    empty: list[str] = []
    for c, name in enumerate(classes):
        found = [f for f in sorted((root / name).iterdir()) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        files += [(f, c) for f in found]
        empty += [] if found else [name]
    if not files:
        raise ValueError(f"load_image_folder: no images with suffix {IMAGE_SUFFIXES} under {root}")
    if empty:  # a class no image stands for: every model would get a label it never sees (torchvision refuses too)
        raise ValueError(
            f"load_image_folder: class folder(s) {empty} under {root} hold no images with suffix "
            f"{IMAGE_SUFFIXES}; add images or remove the folder(s)"
        )
    if mode is None:  # from the headers alone: nothing is decoded twice
        gray = True
        for f, _ in files:
            try:
                with Image.open(f) as im:
                    gray = im.mode in ("L", "1", "I;16", "I", "LA")
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
                raise ValueError(f"load_image_folder: cannot decode image {f}: {e}") from e
            if not gray:
                break
        mode = "L" if gray else "RGB"

    def read(f: Path) -> np.ndarray:
        # decoded, converted and resized one file at a time, on a pool of threads (Pillow decodes
        # without the GIL): only the resized arrays are kept, whatever the photos' own size
        try:
            with Image.open(f) as opened:
                if size is not None and opened.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale, >= 2x size
                    opened.draft(mode, (2 * size[1], 2 * size[0]))
                im = opened.convert(mode)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise ValueError(f"load_image_folder: cannot decode image {f}: {e}") from e
        if size is not None:
            im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=3.0)
        a = np.asarray(im, dtype=np.uint8)
        return a[..., None] if a.ndim == 2 else a

    from concurrent.futures import ThreadPoolExecutor

    from augmentgen.core.system import usable_cores

    with ThreadPoolExecutor(max(1, min(8, usable_cores()))) as pool:
        arrays = list(pool.map(read, [f for f, _ in files]))
    for (f, _), a in zip(files, arrays, strict=True):
        if a.shape != arrays[0].shape:
            raise ValueError(
                f"load_image_folder: {f} is {a.shape[1]}x{a.shape[0]}, {files[0][0]} is "
                f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; pass size=(H, W) to resize (a recipe: data.image_size)"
            )
    labels = np.array([c for _, c in files], dtype=np.int64)
    return ArrayDataset(np.stack(arrays), labels, classes, f"folder:{root.name}")


def conform(ds: ArrayDataset, *, size: int | tuple[int, int] | None = None, mode: str | None = None) -> ArrayDataset:
    """``ds`` with its images resized to ``size`` (a side, or ``(H, W)``) and/or converted to ``mode`` ("L" or "RGB").

    Downscaling averages pixel areas (OpenCV ``INTER_AREA``, no aliasing); upscaling is bilinear.
    Gray from RGB uses ITU-R 601 weights (as PIL's ``convert("L")``); RGB from gray repeats the
    plane. Returns ``ds`` itself when nothing changes.

    Example:
        >>> ds = conform(load_digits("test"), size=12, mode="RGB")
        >>> ds.image_shape
        (3, 12, 12)
    """
    import cv2

    if mode not in (None, "L", "RGB"):
        raise ValueError(f"conform: mode must be 'L', 'RGB' or None, got {mode!r}")
    hw = (size, size) if isinstance(size, int) else size
    if hw is not None and min(hw) < 1:
        raise ValueError(f"conform: size must be >= 1, got {size}")
    images = ds.images
    _, h, w, c = images.shape
    if hw is not None and (h, w) != hw:
        interp = cv2.INTER_AREA if hw[0] * hw[1] < h * w else cv2.INTER_LINEAR
        out = np.empty((len(images), *hw, c), np.uint8)
        for i, im in enumerate(images):
            out[i] = cv2.resize(im, (hw[1], hw[0]), interpolation=interp).reshape(*hw, c)
        images = out
    if mode == "L" and c == 3:
        images = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images])[..., None]
    elif mode == "RGB" and c == 1:
        images = np.repeat(images, 3, axis=-1)
    if images is ds.images:
        return ds
    return ArrayDataset(np.ascontiguousarray(images), ds.labels.copy(), list(ds.classes), ds.name)


# ---- subsets and splits -------------------------------------------------------------------------


def _as_rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(int(seed))


def subset_per_class(ds: ArrayDataset, n_per_class: int, seed: int | np.random.Generator = 0) -> ArrayDataset:
    """A balanced low-data subset: ``n_per_class`` samples of every class, drawn under ``seed``.

    Example:
        >>> subset_per_class(load_digits("train"), 5, seed=0).class_counts().tolist()
        [5, 5, 5, 5, 5, 5, 5, 5, 5, 5]
    """
    if n_per_class < 1:
        raise ValueError(f"subset_per_class: n_per_class must be >= 1, got {n_per_class}")
    rng = _as_rng(seed)
    counts = ds.class_counts()
    short = {ds.classes[c]: int(n) for c, n in enumerate(counts) if n < n_per_class}
    if short:
        raise ValueError(
            f"subset_per_class: {ds.name} has fewer than {n_per_class} samples in classes {short}"
        )
    chosen = [
        rng.choice(np.flatnonzero(ds.labels == c), size=n_per_class, replace=False)
        for c in range(ds.num_classes)
    ]
    return ds.select(np.sort(np.concatenate(chosen)), name=f"{ds.name}[{n_per_class}/class]")


def train_val_split(
    ds: ArrayDataset, val_fraction: float, seed: int | np.random.Generator = 0
) -> tuple[ArrayDataset, ArrayDataset]:
    """Split ``ds`` into (train, val), stratified per class, under ``seed``.

    Example:
        >>> tr, va = train_val_split(load_digits("train"), 0.1, seed=0)
        >>> len(tr) + len(va) == len(load_digits("train"))
        True
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1), got {val_fraction}")
    train_idx, val_idx = _stratified_split(ds.labels, val_fraction, _as_rng(seed))
    return ds.select(train_idx, name=f"{ds.name}/train"), ds.select(val_idx, name=f"{ds.name}/val")
