"""Shard writing throughput vs webdataset.ShardWriter + PIL, the encode ceiling and raw tar, measured in one run.

Usage: .venv/bin/python benchmarks/shards.py [--quick] [--json]  (same as `augmentgen bench shards`)
"""

from __future__ import annotations

import argparse
import json

from augmentgen.bench.shards import run_shards_benchmark

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer samples per measurement")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    res = run_shards_benchmark(quick=args.quick, log=None if args.json else print)
    if args.json:
        print(json.dumps(res, indent=2))
