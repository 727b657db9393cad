"""A pipeline dropped into a PyTorch DataLoader with workers, and what it guarantees.

Augments Fashion-MNIST (or scikit-learn's 8x8 digits with ``--dataset digits``) inside the
DataLoader's worker processes and checks, on the real output:

1. every epoch draws new augmentations (epoch 0 != epoch 1);
2. the same seed gives the same augmented epochs whatever the number of workers;
3. the augmentations act (most images differ from their originals), labels ride along
   unchanged, and images stay uint8 CHW.

Run (the CI runs it small)::

    .venv/bin/python examples/dataloader_dropin.py --n 2048 --workers 0 2 4
    .venv/bin/python examples/dataloader_dropin.py --dataset digits --n 256 --workers 0 2

Exits non-zero when a check fails; the last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

import augmentgen.ops  # noqa: F401  (registers the ops)
from augmentgen.data.sources import ArrayDataset, load_digits, load_fashion_mnist
from augmentgen.pipeline import Pipeline, make_loader

PIPELINE = [
    {"name": "horizontal_flip", "p": 0.5},
    {"name": "affine", "degrees": [-10, 10], "translate": [0.1, 0.1], "scale": [0.9, 1.1], "p": 0.9},
    {"name": "brightness", "brightness": 0.2, "p": 0.5},
    {"name": "random_erasing", "scale": [0.02, 0.15], "p": 0.3},
]


class Indexed(torch.utils.data.Dataset[tuple[np.ndarray, int, int]]):
    """``(image HWC uint8, label, index)``: the index lets us compare with the un-augmented original."""

    def __init__(self, ds: ArrayDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, int]:
        image, label = self.ds[i]
        return image, label, i


def check(ok: bool, message: str) -> None:
    """Fail with ``message`` unless ``ok`` (not ``assert``: it must hold under ``python -O`` too)."""
    if not ok:
        raise AssertionError(message)


def read_epochs(
    ds: ArrayDataset, pipe: Pipeline, *, workers: int, epochs: int, seed: int, batch_size: int
) -> list[dict[str, torch.Tensor]]:
    """Every epoch of a DataLoader with ``workers`` worker processes, as whole tensors in loader order."""
    loader = make_loader(
        Indexed(ds), pipe, seed=seed, batch_size=batch_size, num_workers=workers,
        persistent_workers=workers > 0,
    )  # fmt: skip
    out = []
    for _ in range(epochs):
        images, labels, index = [], [], []
        for x, y, i in loader:  # x: [B, C, H, W] uint8, augmented in the workers
            images.append(x)
            labels.append(y)
            index.append(i)
        out.append({"image": torch.cat(images), "label": torch.cat(labels), "index": torch.cat(index)})
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the checks; return the summary (raises AssertionError naming the check that fails)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=["fashion_mnist", "digits"], default="fashion_mnist")
    ap.add_argument("--n", type=int, default=2048, help="images of the training split to use")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="worker counts to compare")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.epochs < 2:
        ap.error("--epochs must be at least 2 (epochs are compared with each other)")
    torch.set_num_threads(1)

    full = load_fashion_mnist("train") if args.dataset == "fashion_mnist" else load_digits("train")
    ds = full.select(np.arange(min(args.n, len(full))))
    pipe = Pipeline.from_dict(PIPELINE)

    runs: dict[int, list[dict[str, torch.Tensor]]] = {}
    seconds: dict[int, float] = {}
    for w in args.workers:
        t0 = time.perf_counter()
        runs[w] = read_epochs(
            ds, pipe, workers=w, epochs=args.epochs, seed=args.seed, batch_size=args.batch_size
        )
        seconds[w] = time.perf_counter() - t0
        print(f"workers={w}: {args.epochs} epochs of {len(ds)} images in {seconds[w]:.2f} s")

    base = runs[args.workers[0]]
    originals = torch.from_numpy(ds.images).permute(0, 3, 1, 2)  # [N, C, H, W] uint8
    for e, epoch in enumerate(base):
        check(
            epoch["image"].dtype == torch.uint8 and epoch["image"].shape == originals.shape,
            f"epoch {e}: expected uint8 {tuple(originals.shape)}, got {epoch['image'].dtype} "
            f"{tuple(epoch['image'].shape)}",
        )
        check(
            sorted(epoch["index"].tolist()) == list(range(len(ds))),
            f"epoch {e} does not visit every image once",
        )
        check(
            torch.equal(epoch["label"], torch.from_numpy(ds.labels)[epoch["index"]]),
            f"epoch {e}: labels moved",
        )
    # 1. new augmentations every epoch (compare the same images, whatever the shuffled order)
    by_index = [ep["image"][torch.argsort(ep["index"])] for ep in base]
    changed_between_epochs = float((by_index[0] != by_index[1]).flatten(1).any(1).float().mean())
    check(
        changed_between_epochs > 0.5,
        f"only {changed_between_epochs:.0%} of images differ between epochs 0 and 1",
    )
    # 2. identical epochs for every worker count
    for w, epochs in runs.items():
        for e, (a, b) in enumerate(zip(base, epochs, strict=True)):
            check(torch.equal(a["index"], b["index"]), f"workers={w}, epoch {e}: a different order")
            check(torch.equal(a["image"], b["image"]), f"workers={w}, epoch {e}: different augmentations")
    # 3. the pipeline acts on most images
    augmented = float((by_index[0] != originals).flatten(1).any(1).float().mean())
    check(augmented > 0.5, f"only {augmented:.0%} of images were changed by the pipeline")

    summary = {
        "dataset": args.dataset,
        "images": len(ds),
        "workers": args.workers,
        "epochs": args.epochs,
        "changed_between_epochs": round(changed_between_epochs, 4),
        "changed_from_original": round(augmented, 4),
        "identical_across_workers": True,
        "seconds": {str(w): round(s, 3) for w, s in seconds.items()},
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"check failed: {e}", file=sys.stderr)
        sys.exit(1)
