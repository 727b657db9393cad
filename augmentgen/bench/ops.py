"""Throughput of the default classical pipeline against albumentations, torchvision v2 and kornia.

The pipeline: rotate ±15°, scale 0.9-1.1, random resized crop back to the input size
(scale 0.8-1), color jitter 0.2 (brightness, contrast, saturation), gaussian noise σ 0.03,
with per-sample random parameters, on RGB uint8 scikit-image photos at 32 and 224 px.

Settings (the same for every library in one run):
- ``loop``: one process, one thread (torch and OpenCV), a Python loop over images.
- ``dataloader``: a torch DataLoader, 2 workers, batch 64, each worker single-threaded;
  per-sample libraries run inside the workers, the figure is images/s out of the loader.
- ``batch``: batch 256 float tensors on the CPU in one process (kornia, augmentgen torch path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from augmentgen.core.rng import reused_sample_rng, torch_rng
from augmentgen.data.photos import PHOTOS, load_photo

Log = Callable[[str], None] | None


def augmentgen_pipeline(size: int) -> Any:
    import augmentgen.ops  # noqa: F401
    from augmentgen.pipeline import Pipeline

    return Pipeline.from_dict(
        [
            {"name": "rotate", "degrees": [-15, 15]},
            {"name": "scale", "scale": [0.9, 1.1]},
            {"name": "random_resized_crop", "size": [size, size], "scale": [0.8, 1.0]},
            {"name": "color_jitter", "brightness": 0.2, "contrast": 0.2, "saturation": 0.2},
            {"name": "gaussian_noise", "sigma": [0.03, 0.03]},
        ]
    )


def albumentations_pipeline(size: int) -> Any:
    import albumentations as A

    return A.Compose(
        [
            A.Affine(rotate=(-15, 15), p=1.0),
            A.Affine(scale=(0.9, 1.1), p=1.0),
            A.RandomResizedCrop(size=(size, size), scale=(0.8, 1.0), p=1.0),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0, p=1.0),
            A.GaussNoise(std_range=(0.03, 0.03), p=1.0),
        ],
        seed=0,
    )


def torchvision_pipeline(size: int) -> Any:
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomRotation(15),
            v2.RandomAffine(degrees=0, scale=(0.9, 1.1)),
            v2.RandomResizedCrop(size, scale=(0.8, 1.0), antialias=True),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
            v2.ToDtype(torch.float32, scale=True),
            v2.GaussianNoise(sigma=0.03),
        ]
    )


def kornia_pipeline(size: int) -> Any:
    import kornia.augmentation as K

    return K.AugmentationSequential(
        K.RandomRotation(15.0, p=1.0),
        K.RandomAffine(degrees=0.0, scale=(0.9, 1.1), p=1.0),
        K.RandomResizedCrop((size, size), scale=(0.8, 1.0), p=1.0),
        K.ColorJitter(0.2, 0.2, 0.2, 0.0, p=1.0),
        K.RandomGaussianNoise(std=0.03, p=1.0),
    )


def make_images(size: int, n: int) -> list[np.ndarray]:
    """``n`` RGB uint8 images of ``size``: random crops of the sample photos, resized."""
    rng = np.random.default_rng(0)
    photos = [load_photo(name) for name in PHOTOS]
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        h, w = p.shape[:2]
        side = int(min(h, w) * rng.uniform(0.5, 1.0))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out.append(cv2.resize(np.ascontiguousarray(p[y : y + side, x : x + side]), (size, size), interpolation=cv2.INTER_AREA))
    return out


class _PerSample(Dataset[torch.Tensor]):
    """Images augmented per item by one library; returns CHW uint8 (float for torchvision)."""

    def __init__(self, images: list[np.ndarray], lib: str, size: int) -> None:
        self.images, self.lib, self.size = images, lib, size
        self.fn: Any = None

    def __len__(self) -> int:
        return len(self.images)

    def _build(self) -> None:
        self.fn = {"augmentgen": augmentgen_pipeline, "albumentations": albumentations_pipeline,
                   "torchvision": torchvision_pipeline}[self.lib](self.size)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.fn is None:
            self._build()
        img = self.images[i]
        if self.lib == "augmentgen":
            out = self.fn(img, rng=reused_sample_rng(0, 0, i))
        elif self.lib == "albumentations":
            out = self.fn(image=img)["image"]
        else:
            return self.fn(torch.from_numpy(img).permute(2, 0, 1))  # type: ignore[no-any-return]
        return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _best_rates(
    fns: dict[str, Callable[[], int]], seconds: float, rounds: int = 5, per_round: dict[str, list[float]] | None = None
) -> dict[str, float]:
    """Images/s per library: the best of ``rounds`` interleaved rounds of ``seconds / rounds`` each.

    Interleaving and taking the best round keeps a busy machine from favouring whichever
    library happened to run while it was quiet. ``per_round`` (if given) receives every
    round's rate, for ratios paired round by round (``_paired_ratio``).
    """
    best = dict.fromkeys(fns, 0.0)
    for fn in fns.values():
        fn()  # warm-up (builds pipelines, starts workers)
    for _ in range(rounds):
        for name, fn in fns.items():
            done, t0 = 0, time.perf_counter()
            while True:
                done += fn()
                el = time.perf_counter() - t0
                if el >= seconds / rounds:
                    break
            best[name] = max(best[name], done / el)
            if per_round is not None:
                per_round.setdefault(name, []).append(done / el)
    return best


def _paired_ratio(per_round: dict[str, list[float]], lib: str, ref: str) -> float:
    """Median over rounds of ``lib``'s rate over ``ref``'s in the same round (drift in the machine's
    speed between rounds cancels; the best-of-rounds ratio can pair a fast round with a slow one)."""
    a, b = per_round.get(lib, []), per_round.get(ref, [])
    if not a or len(a) != len(b):
        return float("nan")
    return float(np.median([x / y for x, y in zip(a, b, strict=True)]))


def _loop(lib: str, images: list[np.ndarray], size: int) -> Callable[[], int]:
    ds = _PerSample(images, lib, size)

    def run() -> int:
        for i in range(len(ds)):
            ds[i]
        return len(ds)

    return run


def _loader(lib: str, images: list[np.ndarray], size: int) -> Callable[[], int]:
    ds: Dataset[Any]
    if lib == "augmentgen":  # what users run: AugmentedDataset, whose batch fetch draws per batch
        from augmentgen.pipeline.dataloader import AugmentedDataset

        ds = AugmentedDataset(images, augmentgen_pipeline(size), seed=0)
    else:
        ds = _PerSample(images, lib, size)
    loader = DataLoader(ds, batch_size=64, num_workers=2, worker_init_fn=_single_thread_worker,
                        persistent_workers=True, prefetch_factor=4)

    def run() -> int:
        n = 0
        for b in loader:
            n += int(b.shape[0])
        return n

    return run


def _batch(lib: str, images: list[np.ndarray], size: int) -> Callable[[], int]:
    x = torch.from_numpy(np.stack(images[:256])).permute(0, 3, 1, 2).float().div(255.0).contiguous()
    if lib == "kornia":
        aug = kornia_pipeline(size)
        return lambda: int(aug(x).shape[0])
    from augmentgen.core.batch import Batch

    pipe = augmentgen_pipeline(size)
    gen = torch_rng(0, "bench")
    return lambda: int(pipe(Batch(x), rng=gen).batch_size)


def run_ops_benchmark(*, quick: bool = False, suite: str = "classic", log: Log = print) -> dict[str, Any]:
    """Measure every library in every setting at 32 and 224 px; returns images/s and ratios."""
    if suite != "classic":
        raise ValueError(f"unknown ops benchmark suite {suite!r}; known: classic")
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    seconds = 1.5 if quick else 5.0
    results: dict[str, Any] = {"settings": {"threads": 1, "dataloader_workers": 2, "batch": 256, "quick": quick}, "sizes": {}}
    libs = ["augmentgen", "albumentations", "torchvision"]
    for size in (32, 224):
        n = (512 if quick else 2048) if size == 32 else (128 if quick else 512)
        images = make_images(size, n)
        res: dict[str, dict[str, float]] = {}
        paired: dict[str, dict[str, float]] = {}
        for setting, maker in (("loop", _loop), ("dataloader", _loader)):
            fns: dict[str, Callable[[], int]] = {}
            for lib in libs:
                try:
                    fns[lib] = maker(lib, images, size)
                except ImportError as e:
                    if log:
                        log(f"  skipped {lib}: {e}")
            rounds: dict[str, list[float]] = {}
            rates = _best_rates(fns, seconds * len(fns), rounds=8, per_round=rounds)
            res[setting] = {lib: round(rates.get(lib, float("nan")), 1) for lib in libs}
            paired.setdefault(setting, {})
            for lib in libs:
                paired[setting][lib] = round(_paired_ratio(rounds, lib, "albumentations"), 2)
        bfns: dict[str, Callable[[], int]] = {}
        for lib in ("augmentgen", "kornia"):
            try:
                bfns[lib] = _batch(lib, images, size)
            except ImportError as e:
                if log:
                    log(f"  skipped {lib}: {e}")
        brates = _best_rates(bfns, seconds * len(bfns))
        res["batch"] = {lib: round(brates.get(lib, float("nan")), 1) for lib in ("augmentgen", "kornia")}
        ratios = {s: {lib: round(v / res[s]["albumentations"], 2) for lib, v in res[s].items()}
                  for s in ("loop", "dataloader")}
        ratios["batch"] = {"augmentgen_vs_kornia": round(res["batch"]["augmentgen"] / res["batch"]["kornia"], 2)}
        results["sizes"][str(size)] = {
            "images_per_s": res,
            "ratio_to_albumentations": ratios,
            "median_paired_round_ratio_to_albumentations": paired,
        }
        if log:
            log(f"{size}x{size} RGB uint8 — images/s (ratio to albumentations)")
            for s in ("loop", "dataloader"):
                row = "  ".join(
                    f"{lib} {res[s][lib]:.0f} ({ratios[s][lib]:.2f}x, paired {paired[s][lib]:.2f}x)" for lib in libs
                )
                log(f"  {s:<10} {row}")
            log(f"  {'batch 256':<10} augmentgen {res['batch']['augmentgen']:.0f}  kornia {res['batch']['kornia']:.0f}  "
                f"({ratios['batch']['augmentgen_vs_kornia']:.2f}x kornia)")
    return results
