"""Does DiffAugment let the cGAN train from a few hundred images? Same GAN, same steps, with and without it.

Trains two cGANs on a balanced Fashion-MNIST subset (``--per-class`` images per class) and
judges both with a reference classifier trained on the full training set (label agreement,
label coverage, within-class diversity relative to real images) plus the ADA overfitting
heuristic r_t the trainer logs. Prints one Markdown table.

    python benchmarks/generators_lowdata.py --classifier runs/fashion-mnist/classifier \
        --per-class 50 --steps 1500 --out runs/lowdata
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from augmentgen.data import load_fashion_mnist, subset_per_class
from augmentgen.eval.cas import label_agreement
from augmentgen.eval.classifier import ReferenceClassifier
from augmentgen.generators import CGANConfig, ConditionalGAN, Trainer
from augmentgen.generators.config import TrainSpec
from augmentgen.generators.monitors import within_class_diversity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classifier", type=Path, required=True, help="reference classifier trained on all data")
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--out", type=Path, default=Path("runs/lowdata"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--d-width", type=int, default=16, help="discriminator width (wider overfits sooner)")
    ap.add_argument(
        "--arm", choices=["both", "plain", "diffaugment"], default="both", help="run one arm only"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clf = ReferenceClassifier.from_pretrained(args.classifier)
    train = subset_per_class(load_fashion_mnist("train"), args.per_class, seed=0)
    real = train.to_batch()
    assert real.label is not None
    real_div = float(within_class_diversity(real.image, real.label).mean())
    rows = []
    arms = [("no DiffAugment", ""), ("DiffAugment color,translation,cutout", "color,translation,cutout")]
    if args.arm != "both":
        arms = [a for a in arms if bool(a[1]) == (args.arm == "diffaugment")]
    for name, policy in arms:
        model = ConditionalGAN(CGANConfig(g_width=32, d_width=args.d_width, diffaugment=policy))
        spec = TrainSpec(steps=args.steps, batch_size=64, log_every=100, sample_every=0, checkpoint_every=0)
        out = args.out / ("diffaugment" if policy else "plain")
        res = Trainer(model, train.to_batch(uint8=True), spec, out).fit()
        agree = label_agreement(model, clf, per_class=500)
        b = model.generate(torch.arange(10).repeat_interleave(100), 1000, torch.Generator().manual_seed(0))
        assert b.label is not None
        div = float(within_class_diversity(b.image, b.label).mean()) / real_div
        recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        rts = [r["r_t"] for r in recs if "r_t" in r]
        rows.append(
            (
                name,
                res.seconds,
                res.cpu_seconds,
                agree.agreement,
                agree.coverage,
                div,
                rts[-1] if rts else float("nan"),
            )
        )
    print(
        f"{len(train)} real images ({args.per_class}/class), {args.steps} steps, batch 64, d_width {args.d_width}\n"
    )
    print(
        "| cGAN | train s wall | train s CPU | label agreement | label coverage | diversity / real | final r_t |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.0f} | {r[2]:.0f} | {r[3]:.4f} | {r[4]:.2f} | {r[5]:.3f} | {r[6]:.3f} |")


if __name__ == "__main__":
    main()
