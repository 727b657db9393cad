"""Generate synthetic WebDataset shards offline: train a generator, stream it through classical ops into tars.

1. trains a small conditional VAE on a balanced real subset and saves it (``save_pretrained``);
2. streams its samples, class by class in turn, through a classical pipeline into
   ``OUT/shards/{name}-{i:06d}.tar`` with a ``manifest.json`` (``write_shards``);
3. checks the result: every shard verifies against the manifest (``verify_shards``), reads back
   with the expected size, dtype and class histogram (``augmentgen.shards.load``), carries its
   provenance, a re-run with ``resume`` writes nothing, and two worker processes write the same
   bytes as one.

Run (the CI runs the digits setting)::

    .venv/bin/python examples/generate_shards.py --out /tmp/shards-example
    .venv/bin/python examples/generate_shards.py --dataset digits --steps 100 --shards 2 --size 100 --out /tmp/sx

Exits non-zero when a check fails; the last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augmentgen.data.sources import load_digits, load_fashion_mnist, subset_per_class
from augmentgen.generators.config import TrainSpec
from augmentgen.generators.cvae import ConditionalVAE
from augmentgen.generators.trainer import Trainer
from augmentgen.shards import GenerateRecipe, RunConfig, load, verify_shards, write_shards

PIPELINE = {
    "transforms": [
        {"name": "horizontal_flip", "p": 0.5},
        {"name": "affine", "degrees": [-8, 8], "translate": [0.08, 0.08], "scale": [0.9, 1.1], "p": 0.8},
    ]
}


def check(ok: bool, message: str) -> None:
    """Fail with ``message`` unless ``ok`` (not ``assert``: it must hold under ``python -O`` too)."""
    if not ok:
        raise AssertionError(message)


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every tar in ``folder``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tar"))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, write, verify and read back; return the summary (raises AssertionError naming a failed check)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=["fashion_mnist", "digits"], default="fashion_mnist")
    ap.add_argument("--per-class", type=int, default=100, help="real training images per class")
    ap.add_argument("--steps", type=int, default=400, help="CVAE training steps")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--size", type=int, default=500, help="samples per shard")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the byte-identity re-write")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), time.process_time()

    # 1. a generator trained on a balanced real subset, saved as config.json + model.safetensors
    full = load_fashion_mnist("train") if args.dataset == "fashion_mnist" else load_digits("train")
    train = subset_per_class(full, args.per_class, seed=0)
    c, h, _ = train.image_shape
    small = args.dataset == "digits"
    model = ConditionalVAE.from_config(
        {
            "num_classes": train.num_classes, "channels": c, "image_size": h,
            "width": 8 if small else 16, "latent_dim": 4 if small else 16, "hidden": 32 if small else 128,
            "kl_warmup_steps": max(1, args.steps // 4),
        }
    )  # fmt: skip
    spec = TrainSpec(steps=args.steps, batch_size=64, device="cpu", sample_every=0, checkpoint_every=0)
    Trainer(model, train.to_batch(uint8=True), spec, args.out / "cvae").fit()
    model_dir = args.out / "cvae" / "model"
    check((model_dir / "config.json").is_file(), f"no generator saved in {model_dir}")

    # 2. the generator's samples through classical ops into shards
    recipe = GenerateRecipe.model_validate(
        {
            "shards": {"name": "cvae", "count": args.shards, "size": args.size, "format": "png", "seed": 0},
            "source": {
                "kind": "generator",
                "name": "cvae",
                "path": str(model_dir),
                "classes": train.num_classes,
            },
            "pipeline": PIPELINE,
        }
    )
    shard_dir = args.out / "shards"
    result = write_shards(recipe, shard_dir)
    check(result.ok and result.written == list(range(args.shards)), f"write_shards: {result}")

    # 3. verify, read back, and re-write
    report = verify_shards(shard_dir, decode=True)
    check(
        report.ok and report.complete,
        f"verify_shards: complete={report.complete}, faults={report.faults[:3]}",
    )
    total = args.shards * args.size
    check(report.samples == total, f"verify_shards counted {report.samples} samples, expected {total}")

    labels, keys = [], set()
    for sample in load(shard_dir):
        img = sample["image"]
        check(
            img.dtype == np.uint8 and img.shape == (h, h, c),
            f"{sample['__key__']}: image {img.dtype} {img.shape}",
        )
        check(
            sample["meta"].get("seed") is not None,
            f"{sample['__key__']}: no provenance seed in {sample['meta']}",
        )
        labels.append(sample["label"])
        keys.add(sample["__key__"])
    histogram = np.bincount(labels, minlength=train.num_classes)
    check(
        len(labels) == total and len(keys) == total,
        f"read {len(labels)} samples ({len(keys)} keys), expected {total}",
    )
    # labels cycle through the classes: the histogram is balanced to within one sample
    check(int(histogram.max() - histogram.min()) <= 1, f"unbalanced class histogram {histogram.tolist()}")

    again = write_shards(recipe, shard_dir, resume=True)
    check(
        not again.written and again.skipped == list(range(args.shards)),
        f"resume re-wrote shards: {again.written}",
    )
    identical = None
    if args.workers > 1:
        other = args.out / f"shards-{args.workers}-workers"
        write_shards(recipe, other, run=RunConfig(workers=args.workers))
        identical = digest(other) == digest(shard_dir)
        check(identical, f"{args.workers} workers wrote different bytes than one")

    summary = {
        "dataset": args.dataset,
        "real_images": len(train),
        "shards": report.shards,
        "samples": report.samples,
        "class_histogram": histogram.tolist(),
        "bytes_identical_across_workers": identical,
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
