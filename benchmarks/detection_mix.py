"""CPU time of the detection batch ops (mosaic, copy-paste) on the driving-coco fixture.

    .venv/bin/python benchmarks/detection_mix.py [--rows 20] [--size 192 320]

Reports the best of 5 rounds of 5 calls each, in process CPU time (the shared machine's
load moves wall time, not CPU time), one torch thread.
"""

from __future__ import annotations

import argparse
import time

import torch

import augmentgen.ops  # noqa: F401  (fills the op registry)
from augmentgen.core.rng import torch_rng
from augmentgen.data.detection import load_coco
from augmentgen.ops.mix import CopyPaste, Mosaic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20)
    ap.add_argument("--size", type=int, nargs=2, default=[192, 320])
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_coco("examples/data/driving-coco/annotations.json")
    batch = ds.to_batch([i % len(ds) for i in range(args.rows)], size=tuple(args.size))
    for name, op in (("mosaic", Mosaic(p=1.0)), ("copy_paste", CopyPaste(p=1.0, paste_fraction=1.0))):
        best = float("inf")
        for _ in range(5):
            c0 = time.process_time()
            for i in range(5):
                op.apply(batch, op.sample_params(batch, torch_rng(i)))
            best = min(best, (time.process_time() - c0) / 5)
        h, w = args.size
        print(
            f"{name}: {args.rows} rows {h}x{w}: {best * 1e3:.1f} ms CPU per batch ({best / args.rows * 1e3:.2f} ms/row)"
        )


if __name__ == "__main__":
    main()
