"""Train a classifier on synthetic shards mixed with real data, in your own PyTorch loop.

Reads the shards of ``examples/generate_shards.py`` (or a run folder's ``shards/{generator}/``
from ``augmentgen run``), interleaves them with a balanced real subset at an exact synthetic
share (``MixedDataset``), trains a small CNN through a plain ``DataLoader`` (optionally on
MixUp / CutMix batches with soft targets: ``--mix``) and tests it on the full real test split. Checks that the stream holds the requested share of synthetic samples
and that the classifier beats chance by a clear margin.

Run::

    .venv/bin/python examples/generate_shards.py --out /tmp/sx
    .venv/bin/python examples/train_on_shards.py --shards /tmp/sx/shards
    .venv/bin/python examples/train_on_shards.py --shards runs/main/shards/cgan --per-class 100 --ratio 0.5
    .venv/bin/python examples/train_on_shards.py --shards /tmp/sx/shards --mix cutmix
    .venv/bin/python examples/train_on_shards.py --shards /tmp/sx/shards --synthetic-ops trivial_augment

Exits non-zero when a check fails; the last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from augmentgen.core import Batch
from augmentgen.core.rng import torch_rng
from augmentgen.data.sources import ArrayDataset, load_digits, load_fashion_mnist, subset_per_class
from augmentgen.pipeline import LabelMix, Pipeline
from augmentgen.shards import MixedDataset, collate, load


def check(ok: bool, message: str) -> None:
    """Fail with ``message`` unless ``ok`` (not ``assert``: it must hold under ``python -O`` too)."""
    if not ok:
        raise AssertionError(message)


def small_cnn(channels: int, num_classes: int, rng: torch.Generator) -> nn.Module:
    """Three convolutions and a linear head; works from 8x8 to 32x32 inputs."""
    net = nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(256, num_classes),
    )  # fmt: skip
    for p in net.parameters():  # seeded init, independent of global RNG
        if p.dim() > 1:
            nn.init.kaiming_uniform_(p, a=5**0.5, generator=rng)
        else:
            nn.init.zeros_(p)
    return net


@torch.no_grad()
def accuracy(net: nn.Module, test: ArrayDataset, chunk: int = 1000) -> float:
    """Top-1 accuracy on every image of ``test``."""
    net.eval()
    correct = 0
    for i in range(0, len(test), chunk):
        b = test.to_batch(range(i, min(i + chunk, len(test))))  # float [B, C, H, W] in [0, 1]
        assert b.label is not None
        correct += int((net(b.image).argmax(1) == b.label).sum())
    net.train()
    return correct / len(test)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train on real + synthetic and test on real; return the summary (raises AssertionError on a failed check)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--shards", type=Path, required=True, help="a shard folder (with manifest.json) or a glob"
    )
    ap.add_argument("--dataset", choices=["fashion_mnist", "digits"], default=None,
                    help="the real data (default: read from the image size of the shards)")  # fmt: skip
    ap.add_argument("--per-class", type=int, default=100, help="real training images per class")
    ap.add_argument("--ratio", type=float, default=0.5, help="share of synthetic samples in the stream")
    ap.add_argument("--epochs", type=int, default=10, help="passes over the real subset")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mix", choices=["none", "mixup", "cutmix", "both"], default="none",
                    help="MixUp / CutMix each batch (LabelMix) and learn its soft targets")  # fmt: skip
    ap.add_argument("--synthetic-ops", choices=["none", "trivial_augment"], default="none",
                    help="pass the synthetic rows of each batch through these ops (the real rows stay as "
                         "they are): what fashion-mnist-lowdata's evaluation does with its generated images")  # fmt: skip
    ap.add_argument("--min-accuracy", type=float, default=None,
                    help="fail below this test accuracy (default: chance + 0.3)")  # fmt: skip
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), time.process_time()

    synthetic = load(args.shards, shuffle=512, seed=args.seed)  # yields sample dicts
    first = next(iter(synthetic.samples()))
    dataset = args.dataset or ("digits" if first["image"].shape[0] == 8 else "fashion_mnist")
    loader_fn = load_fashion_mnist if dataset == "fashion_mnist" else load_digits
    real = subset_per_class(loader_fn("train"), args.per_class, seed=args.seed)
    test = loader_fn("test")
    check(
        first["image"].shape == real.images.shape[1:],
        f"shards hold {first['image'].shape} images but {dataset} has {real.images.shape[1:]}",
    )

    mixed = MixedDataset(real, synthetic, ratio=args.ratio, seed=args.seed)
    loader = DataLoader(mixed, batch_size=args.batch_size, collate_fn=collate, num_workers=args.workers)
    net = small_cnn(real.image_shape[0], real.num_classes, torch.Generator().manual_seed(args.seed))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    alphas = {"mixup": (0.2, 0.0), "cutmix": (0.0, 1.0), "both": (0.8, 1.0)}
    mix = None
    if args.mix != "none":
        mix = LabelMix(real.num_classes, *alphas[args.mix], seed=args.seed)
    syn_ops = None if args.synthetic_ops == "none" else Pipeline.from_dict([{"name": args.synthetic_ops}])
    seen = {"real": 0, "synthetic": 0}
    changed = 0  # synthetic rows the ops changed
    for epoch in range(args.epochs):
        mixed.set_epoch(epoch)  # a new real order and shard order each epoch
        for step, batch in enumerate(loader):  # Batch: image [B, C, H, W] uint8, label [B], meta["key"]
            n_real = sum(k.startswith("real-") for k in batch.meta["key"])
            seen["real"] += n_real
            seen["synthetic"] += batch.batch_size - n_real
            x, target = batch.image.float() / 255.0, batch.label
            syn = torch.tensor([not k.startswith("real-") for k in batch.meta["key"]])
            if syn_ops is not None and bool(syn.any()):  # seeded per (epoch, step): the same run twice is the same
                out = syn_ops(Batch(x[syn]), rng=torch_rng(args.seed, "synthetic-ops", epoch, step)).image
                changed += int(((out - x[syn]).abs().flatten(1).amax(1) > 0).sum())
                x = x.clone()
                x[syn] = out
            if mix is not None:  # mixed images, [B, K] soft targets (cross_entropy takes them as they are)
                x, target = mix(x, batch.label, epoch=epoch, step=step)
            loss = nn.functional.cross_entropy(net(x), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    acc = accuracy(net, test)
    chance = 1.0 / real.num_classes
    share = seen["synthetic"] / max(1, sum(seen.values()))
    check(abs(share - args.ratio) < 0.01, f"the stream held {share:.3f} synthetic, asked for {args.ratio}")
    check(
        seen["real"] == args.epochs * len(real),
        f"saw {seen['real']} real samples, expected {args.epochs * len(real)}",
    )
    floor = args.min_accuracy if args.min_accuracy is not None else chance + 0.3
    check(acc >= floor, f"test accuracy {acc:.4f} is below {floor:.4f} (chance {chance:.2f})")

    summary = {
        "dataset": dataset,
        "mix": args.mix,
        "synthetic_ops": args.synthetic_ops,
        "synthetic_rows_changed": round(changed / max(1, seen["synthetic"]), 4),
        "real_images": len(real),
        "samples_seen": seen,
        "synthetic_share": round(share, 4),
        "test_images": len(test),
        "test_accuracy": round(acc, 4),
        "chance": chance,
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "cpu_seconds": round(time.process_time() - c0, 2),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"check failed: {e}", file=sys.stderr)
        sys.exit(1)
