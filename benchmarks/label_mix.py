"""MixUp / CutMix after collate: augmentgen's LabelMix against torchvision.transforms.v2, same run.

Times one batch through each mixer (images and soft targets out), on float32 batches of 256
at 28 px grey (Fashion-MNIST), 32 px RGB (CIFAR) and 224 px RGB (ImageNet), one thread, CPU
(CUDA too when present, synchronised), best of ``--repeat`` rounds of ``--n`` batches, the
mixers interleaved round by round so both see the machine at the same speed. torchvision draws
one weight (and box) per batch; ``LabelMix`` is timed both per sample (its default: every row
its own draw, as timm's ``mode="elem"``) and with one draw per batch (``per_sample=False``,
torchvision's behaviour). timm's ``Mixup`` is not installed here and is not timed.

    .venv/bin/python benchmarks/label_mix.py [--n 20] [--repeat 5]

Prints one line per size and mixer: milliseconds per batch and the ratio against torchvision's
transform doing the same (MixUp, CutMix, or ``RandomChoice`` of both for the switching mixers).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch
from torchvision.transforms import v2

from augmentgen.pipeline import CutMix, LabelMix, MixUp

SIZES = {"28px-grey": (1, 28), "32px-rgb": (3, 32), "224px-rgb": (3, 224)}


def time_it(fn: Callable[[int], object], n: int, sync: Callable[[], None]) -> float:
    """Seconds per call over ``n`` calls (the argument is the step)."""
    sync()
    t = time.perf_counter()
    for k in range(n):
        fn(k)
    sync()
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="batches per round")
    ap.add_argument("--repeat", type=int, default=5, help="rounds (best kept)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--json", action="store_true", help="one JSON line per row instead of text")
    args = ap.parse_args()
    torch.set_num_threads(1)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        for size_name, (c, s) in SIZES.items():
            g = torch.Generator().manual_seed(0)
            x = torch.rand(args.batch, c, s, s, generator=g).to(dev)
            y = torch.randint(0, 10, (args.batch,), generator=g).to(dev)
            tv = {
                "mixup": v2.MixUp(alpha=1.0, num_classes=10),
                "cutmix": v2.CutMix(alpha=1.0, num_classes=10),
                "switch": v2.RandomChoice([v2.MixUp(alpha=1.0, num_classes=10), v2.CutMix(alpha=1.0, num_classes=10)]),
            }
            ours = {
                "mixup": MixUp(10),
                "cutmix": CutMix(10),
                "switch": LabelMix(10),
            }
            cases: dict[str, tuple[str, Callable[[int], object]]] = {}
            for kind in ("mixup", "cutmix", "switch"):
                t, o = tv[kind], ours[kind]
                o_batch = LabelMix(10, o.mixup_alpha, o.cutmix_alpha, per_sample=False)
                cases[f"torchvision {kind}"] = (kind, lambda k, t=t, x=x, y=y: t(x, y))
                cases[f"LabelMix {kind}, per sample"] = (kind, lambda k, o=o, x=x, y=y: o(x, y, step=k))
                cases[f"LabelMix {kind}, per batch"] = (kind, lambda k, o=o_batch, x=x, y=y: o(x, y, step=k))
            best = {name: float("inf") for name in cases}
            for _, fn in cases.values():  # warm-up
                fn(0)
            for _ in range(args.repeat):
                for name, (_, fn) in cases.items():
                    best[name] = min(best[name], time_it(fn, args.n, sync))
            for name, (kind, _) in cases.items():
                ms = best[name] * 1e3
                ratio = best[f"torchvision {kind}"] / best[name]
                row = {"device": dev, "size": size_name, "mixer": name, "ms_per_batch": round(ms, 3),
                       "speed_vs_torchvision": round(ratio, 2)}  # fmt: skip
                if args.json:
                    print(json.dumps(row))
                else:
                    print(f"{dev:4s} {size_name:10s} {name:32s} {ms:9.3f} ms/batch  {ratio:5.2f}x torchvision's speed")


if __name__ == "__main__":
    main()
