"""The policies (trivial_augment, rand_augment, auto_augment, augmix) against torchvision's and kornia's, same run.

Two settings, one thread, the peers interleaved round by round with ours (best of ``--repeat``):

- ``single``: one uint8 RGB image per call, as in a Dataset's ``__getitem__``: a seeded
  ``Pipeline([policy])(image, index=i)`` against torchvision.transforms.v2's
  ``TrivialAugmentWide`` / ``RandAugment`` / ``AutoAugment`` / ``AugMix`` on a uint8 CHW tensor and on a PIL image.
- ``batch``: 256 images on the CPU, per-sample draws: ``pipe.map_samples`` on HWC uint8 arrays (the
  DataLoader path of ``AugmentedDataset``: OpenCV per image, parameters drawn for all at once), the
  torch batched path (``Pipeline([policy])(batch, rng=g)`` on a uint8 CHW batch, the path a GPU
  takes), torchvision's policy called on each image in a loop (called on the batch tensor it draws
  one op for all 256), and kornia.augmentation.auto's policy on the float batch (it draws one op
  per batch for TrivialAugment and RandAugment: 5 and 4 distinct results on 64 copies of one
  image, against 51 and 58 for ours).

    .venv/bin/python benchmarks/policies.py [--n 200] [--repeat 3]

Prints one JSON line per size, setting and policy: microseconds per image and the peers' time over ours.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable

import torch
from levels import best_us  # noqa: E402  (benchmarks/ is the script's folder)
from PIL import Image

from augmentgen.data.photos import load_photo
from augmentgen.pipeline import Pipeline

POLICIES = {
    "trivial_augment": ("TrivialAugmentWide", {}),
    "rand_augment": ("RandAugment", {"num_ops": 2, "magnitude": 9}),
    "auto_augment": ("AutoAugment", {}),
    "augmix": ("AugMix", {}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    import kornia
    import kornia.augmentation.auto as KA
    import torchvision
    import torchvision.transforms.v2 as T

    versions = {"torchvision": torchvision.__version__, "kornia": kornia.__version__}
    kornia_cls = {"trivial_augment": KA.TrivialAugment, "rand_augment": KA.RandAugment, "auto_augment": KA.AutoAugment}
    names = ("astronaut", "coffee", "chelsea", "rocket")
    for size in (32, 224):
        imgs = [load_photo(p, size) for p in names]
        tensors = [torch.from_numpy(im).permute(2, 0, 1).contiguous() for im in imgs]
        pils = [Image.fromarray(im) for im in imgs]
        for name, (tv_name, kw) in POLICIES.items():
            pipe = Pipeline.from_dict([{"name": name, **kw}], seed=0)
            tv = getattr(T, tv_name)(**kw)
            counter = iter(range(10**9))
            fns1: dict[str, Callable[[], object]] = {
                "augmentgen": lambda pipe=pipe, c=counter, imgs=imgs: pipe(imgs[next(c) % 4], index=next(c)),
                "torchvision tensor": lambda tv=tv, c=counter, ts=tensors: tv(ts[next(c) % 4]),
                "torchvision PIL": lambda tv=tv, c=counter, pils=pils: tv(pils[next(c) % 4]),
            }
            t = best_us(fns1, args.n, args.repeat, 1)
            print(json.dumps({"setting": "single", "size": size, "policy": name, "us_per_image": {k: round(v, 2) for k, v in t.items()},
                              "peer_over_ours": {k: round(v / t["augmentgen"], 2) for k, v in t.items() if k != "augmentgen"},
                              **versions}), flush=True)
        x8 = torch.stack(tensors * 64)
        xf = x8.float() / 255
        arrays = imgs * 64
        for name, (tv_name, kw) in POLICIES.items():
            pipe = Pipeline.from_dict([{"name": name, **kw}])
            tv = getattr(T, tv_name)(**kw)
            kornia_policy = kornia_cls[name](**({"n": 2, "m": 9} if name == "rand_augment" else {})) if name in kornia_cls else None
            gen = torch.Generator().manual_seed(0)
            epochs = iter(range(10**9))
            fns: dict[str, Callable[[], object]] = {
                "augmentgen": lambda pipe=pipe, e=epochs, arrays=arrays: pipe.map_samples(
                    arrays, seed=0, epoch=next(e), indices=range(len(arrays))
                ),
                "augmentgen torch batch": lambda pipe=pipe, gen=gen, x8=x8: pipe(x8, rng=gen),
                "torchvision loop": lambda tv=tv, x8=x8: [tv(x8[i]) for i in range(x8.shape[0])],
                "kornia": lambda k=kornia_policy, xf=xf: k(xf),
            }
            if kornia_policy is None:  # kornia has no AugMix
                del fns["kornia"]
            t = best_us(fns, max(1, args.n // 20), args.repeat, x8.shape[0])
            print(json.dumps({"setting": "batch", "size": size, "policy": name, "us_per_image": {k: round(v, 2) for k, v in t.items()},
                              "peer_over_ours": {k: round(v / t["augmentgen"], 2) for k, v in t.items() if k != "augmentgen"}}), flush=True)


if __name__ == "__main__":
    main()
