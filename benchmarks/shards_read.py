"""Reading shards back: augmentgen's ``load`` against ``webdataset.WebDataset(...).decode(...)``, measured in one run.

Writes PNG shards of scikit-image photo crops with ``write_shards`` (32 px: 20,000 samples in
shards of 1,000; 224 px: 2,000 in shards of 100), then reads all of them in interleaved rounds
(the best round of each reader counts), each reader yielding decoded HWC uint8 images with
their labels:

- ``augmentgen``: ``augmentgen.shards.load(dir)``, sample dicts (image, label, provenance);
- ``augmentgen_batches``: ``load(dir, batch_size=256)``, ``Batch``es of uint8 tensors;
- ``webdataset``: ``WebDataset(urls, shardshuffle=False).decode("rgb8").to_tuple("image.png", "cls")``
  (its PIL-based decoder, numpy HWC uint8);
- each of the first and third again in a ``DataLoader`` with 2 workers (batch 256), what a
  training loop runs.

Usage: .venv/bin/python benchmarks/shards_read.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import webdataset as wds
from torch.utils.data import DataLoader

from augmentgen.bench.shards import _recipe
from augmentgen.shards import load
from augmentgen.shards.build import build_source
from augmentgen.shards.config import RunConfig
from augmentgen.shards.distribute import write_shards


def _count(it: Iterable[Any], batched: bool = False) -> int:
    """Samples in ``it``: sample dicts / tuples, ``Batch``es, or (with ``batched``) tuples of batched columns."""
    n = 0
    for item in it:
        n += len(item[0]) if batched else getattr(item, "batch_size", 1)
    return n


def _readers(out: Path) -> dict[str, Callable[[], int]]:
    urls = [str(p) for p in sorted(out.glob("*.tar"))]

    def ours() -> int:
        return _count(load(out))

    def ours_batches() -> int:
        return _count(load(out, batch_size=256))

    def webdataset() -> int:
        return _count(wds.WebDataset(urls, shardshuffle=False).decode("rgb8").to_tuple("image.png", "cls"))

    def ours_loader() -> int:
        ds = load(out, batch_size=256)
        return _count(DataLoader(ds, batch_size=None, num_workers=2))

    def webdataset_loader() -> int:
        ds = (
            wds.WebDataset(urls, shardshuffle=False, nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker)
            .decode("rgb8")
            .to_tuple("image.png", "cls")
            .batched(256)
        )
        return _count(DataLoader(ds, batch_size=None, num_workers=2), batched=True)

    return {
        "augmentgen": ours,
        "augmentgen_batches": ours_batches,
        "webdataset": webdataset,
        "augmentgen_dataloader_2_workers": ours_loader,
        "webdataset_dataloader_2_workers": webdataset_loader,
    }


def run(quick: bool) -> dict[str, Any]:
    torch.set_num_threads(1)
    plan = {32: (4000 if quick else 20000, 1000), 224: (400 if quick else 2000, 100)}
    rounds = 2 if quick else 3
    res: dict[str, Any] = {"load_average_before": os.getloadavg(), "rounds": rounds, "results": {}}
    with tempfile.TemporaryDirectory(prefix="augmentgen-bench-read-") as tmp:
        for size, (n, per_shard) in plan.items():
            recipe = _recipe(size, "png", n, per_shard, 256)
            out = Path(tmp) / f"{size}px"
            write_shards(recipe, out, source=build_source(recipe), run=RunConfig())
            best: dict[str, float] = {}
            for _ in range(rounds):
                for name, fn in _readers(out).items():
                    t0 = time.perf_counter()
                    got = fn()
                    rate = got / (time.perf_counter() - t0)
                    if got != n:
                        raise RuntimeError(f"{name} read {got} samples, not {n}")
                    best[name] = max(best.get(name, 0.0), rate)
            row: dict[str, Any] = {"samples": n, **{k: round(v, 1) for k, v in best.items()}}
            row["ratio_samples_vs_webdataset"] = round(best["augmentgen"] / best["webdataset"], 2)
            row["ratio_dataloader_vs_webdataset"] = round(
                best["augmentgen_dataloader_2_workers"] / best["webdataset_dataloader_2_workers"], 2
            )
            res["results"][f"{size}px-png"] = row
    res["load_average_after"] = os.getloadavg()
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples and rounds")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    result = run(args.quick)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, row in result["results"].items():
            print(key, ", ".join(f"{k} {v}" for k, v in row.items()))
