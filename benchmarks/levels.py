"""The level ops (posterize, solarize, autocontrast, equalize, sharpness) against their peers, same run.

Two settings, one thread, the peers interleaved round by round with ours (best of ``--repeat``):

- ``single``: one uint8 RGB image per call, as in a Dataset's ``__getitem__``: a seeded
  ``Pipeline([op])(image, index=i)`` against albumentations (``Posterize``, ``Solarize``,
  ``AutoContrast``, ``Equalize``; ``Sharpen`` is another kernel than PIL's smoothing blend, timed
  as the nearest peer).
- ``batch``: 256 float32 CHW images on the CPU, a per-sample value per image: the op's batched
  path (``Pipeline([op])(batch)``) against kornia.enhance (one value per image as a tensor) and
  a loop of torchvision.transforms.v2.functional over the images (its functionals take one value).

    .venv/bin/python benchmarks/levels.py [--n 200] [--repeat 3]

Prints one JSON line per size, setting and op: microseconds per image and the peers' time over ours.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

import augmentgen.ops  # noqa: F401
from augmentgen.data.photos import load_photo
from augmentgen.pipeline import Pipeline

OPS = ("posterize", "solarize", "autocontrast", "equalize", "sharpness")


def best_us(fns: dict[str, Callable[[], object]], n: int, repeat: int, per: int) -> dict[str, float]:
    """Microseconds per image of each callable (``per`` images a call), interleaved, best round."""
    for f in fns.values():
        f()
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(n):
                f()
            best[k] = min(best[k], (time.perf_counter() - t) / (n * per) * 1e6)
    return best


def single_peers() -> dict[str, Callable[[np.ndarray], object]]:
    import albumentations as A

    peers = {
        "posterize": A.Posterize(num_bits=(4, 8), p=1.0),
        "solarize": A.Solarize(threshold_range=(0.5, 1.0), p=1.0),
        "autocontrast": A.AutoContrast(p=1.0),
        "equalize": A.Equalize(p=1.0),
        "sharpness": A.Sharpen(p=1.0),
    }
    return {k: (lambda img, t=t: t(image=img)) for k, t in peers.items()}


def batch_peers(x: torch.Tensor) -> dict[str, dict[str, Callable[[], object]]]:
    import kornia.enhance as ke
    import torchvision.transforms.v2.functional as TF

    b = x.shape[0]
    g = torch.Generator().manual_seed(0)
    bits = torch.randint(4, 9, (b,), generator=g)
    thr = 0.5 + 0.5 * torch.rand(b, generator=g)
    fac = 0.1 + 1.8 * torch.rand(b, generator=g)
    return {
        "posterize": {
            "kornia": lambda: ke.posterize(x, bits),
            "torchvision loop": lambda: [TF.posterize((x[i] * 255).to(torch.uint8), int(bits[i])) for i in range(b)],
        },
        "solarize": {
            "kornia": lambda: ke.solarize(x, thr),
            "torchvision loop": lambda: [TF.solarize(x[i], float(thr[i])) for i in range(b)],
        },
        "autocontrast": {"torchvision": lambda: TF.autocontrast(x)},
        "equalize": {
            "kornia": lambda: ke.equalize(x),
            "torchvision": lambda: TF.equalize(x),
        },
        "sharpness": {
            "kornia": lambda: ke.sharpness(x, fac),
            "torchvision loop": lambda: [TF.adjust_sharpness(x[i], float(fac[i])) for i in range(b)],
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    import albumentations
    import kornia

    versions = {"albumentations": albumentations.__version__, "kornia": kornia.__version__, "torch": torch.__version__}
    for size in (32, 224):
        img = load_photo("astronaut", size)
        peers = single_peers()
        for name in OPS:
            pipe = Pipeline.from_dict([{"name": name}], seed=0)
            counter = iter(range(10**9))
            fns1: dict[str, Callable[[], object]] = {
                "augmentgen": lambda pipe=pipe, img=img, counter=counter: pipe(img, index=next(counter)),
                "albumentations": lambda peer=peers[name], img=img: peer(img),
            }
            t = best_us(fns1, args.n, args.repeat, 1)
            print(json.dumps({"setting": "single", "size": size, "op": name, "us_per_image": {k: round(v, 2) for k, v in t.items()},
                              "peer_over_ours": round(t["albumentations"] / t["augmentgen"], 2), **versions}), flush=True)
        x = torch.from_numpy(np.stack([load_photo(p, size) for p in ("astronaut", "coffee", "chelsea", "rocket")] * 64)).permute(0, 3, 1, 2).float() / 255
        bpeers = batch_peers(x)
        for name in OPS:
            pipe = Pipeline.from_dict([{"name": name}])
            gen = torch.Generator().manual_seed(0)
            fns: dict[str, Callable[[], object]] = {"augmentgen": lambda pipe=pipe, x=x, gen=gen: pipe(x, rng=gen), **bpeers[name]}
            t = best_us(fns, max(1, args.n // 20), args.repeat, x.shape[0])
            print(json.dumps({"setting": "batch", "size": size, "op": name, "us_per_image": {k: round(v, 2) for k, v in t.items()},
                              "peer_over_ours": {k: round(v / t["augmentgen"], 2) for k, v in t.items() if k != "augmentgen"}}), flush=True)


if __name__ == "__main__":
    main()
