"""Per-sample (numpy/OpenCV) and batched (torch) cost of the photometric ops, in us per image.

Usage: .venv/bin/python benchmarks/photometric.py [--ops color_jitter,gaussian_noise] [--batch]
Single thread (cv2 and torch), scikit-image photos resized to 32 and 224 px, uint8 HWC.
"""

from __future__ import annotations

import argparse
import timeit

import cv2
import numpy as np
import torch

import augmentgen.ops  # noqa: F401
from augmentgen.core import OPS, Batch, Sample

PHOTOMETRIC = [
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "color_jitter",
    "grayscale",
    "rgb_shift",
    "channel_shuffle",
    "invert",
    "gamma",
    "normalize",
    "gaussian_noise",
    "shot_noise",
    "speckle_noise",
    "salt_and_pepper",
    "gaussian_blur",
    "motion_blur",
    "median_blur",
    "random_erasing",
    "cutout",
]


def _photo(size: int) -> np.ndarray:
    from skimage import data

    return cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def _us(fn: object, number: int) -> float:
    # many short repeats, keep the best: robust on a shared, loaded machine
    return min(timeit.repeat(fn, number=number, repeat=100)) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ops", default="")
    ap.add_argument("--batch", action="store_true", help="also time the torch batch path (B=256)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    names = args.ops.split(",") if args.ops else PHOTOMETRIC
    configs = {
        "color_jitter": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2},
        "gaussian_noise": {"sigma": (0.03, 0.03)},
        # float32 medians beyond 5 px go through unfolded windows (~100 ms a 224 px image on a CPU)
        "median_blur": {"ksize": (3, 5)},
    }
    print(
        f"{'op':18s} {'32px draw':>10s} {'32px apply':>10s} {'224px draw':>10s} {'224px apply':>11s}  (us/image)"
    )
    for name in names:
        if name not in OPS:
            continue
        op = OPS.get(name)(**configs.get(name, {}))
        row = [f"{name:18s}"]
        for size in (32, 224):
            s = Sample(_photo(size))
            rng = np.random.default_rng(0)
            n = 50 if size == 32 else 10
            row.append(f"{_us(lambda op=op, s=s, rng=rng: op.sample_params(s, rng), n):10.1f}")
            p = op.sample_params(s, rng)
            row.append(f"{_us(lambda op=op, s=s, p=p: op.apply_sample(s, p), n):10.1f}")
        if args.batch:
            b = Batch(torch.from_numpy(np.stack([_photo(224)] * 256)).permute(0, 3, 1, 2).float() / 255)
            g = torch.Generator().manual_seed(0)
            pb = op.sample_params(b, g)
            row.append(
                f"  batch256@224 float32: {_us(lambda op=op, b=b, pb=pb: op.apply(b, pb), 3) / 256:8.1f}"
            )
        print(" ".join(row))


if __name__ == "__main__":
    main()
