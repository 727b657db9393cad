"""Classical-ops throughput vs albumentations, torchvision v2 and kornia, measured in one run.

Usage: .venv/bin/python benchmarks/ops.py [--quick] [--json]  (same as `augmentgen bench ops`)
"""

from __future__ import annotations

import argparse
import json

from augmentgen.bench.ops import run_ops_benchmark

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = run_ops_benchmark(quick=args.quick, log=None if args.json else print)
    if args.json:
        print(json.dumps(res, indent=2))
