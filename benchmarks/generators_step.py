"""Where one cGAN training step spends its CPU time, part by part (the recipe's G32/D16 cGAN, batch 64).

Mirrors ``ConditionalGAN.training_step`` and the trainer around it with ``time.process_time``
around each part, so the figures are process CPU time (not inflated by other processes on a
shared machine). Run it against two versions of the code to compare them::

    python benchmarks/generators_step.py --steps 60
    PYTHONPATH=/tmp/old python benchmarks/generators_step.py --steps 60   # e.g. a `git archive` of HEAD~1

Prints one Markdown table: ms of CPU per step for each part, and the total.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
import torch.nn.functional as F

import augmentgen
from augmentgen.data import load_fashion_mnist
from augmentgen.generators import CGANConfig, ConditionalGAN, Trainer
from augmentgen.generators.common import ema_update
from augmentgen.generators.config import TrainSpec
from augmentgen.generators.layers import SpectralNorm
from augmentgen.generators.monitors import CollapseMonitor
from augmentgen.generators.trainer import StepContext


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--d-width", type=int, default=16)
    ap.add_argument("--diffaugment", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast, as train.amp_dtype=bfloat16")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train = load_fashion_mnist("train")
    model = ConditionalGAN(CGANConfig(g_width=32, d_width=args.d_width, diffaugment=args.diffaugment))
    spec = TrainSpec(steps=args.steps, batch_size=64, sample_every=0, checkpoint_every=0)
    tr = Trainer(model, train.to_batch(uint8=True), spec, "/tmp/generators_step")
    ref = train.to_batch()
    collapse = CollapseMonitor(10, reference=ref.index(torch.arange(200)), every=1)
    cost: dict[str, float] = defaultdict(float)
    sn_mods = [m for m in model.d.modules() if isinstance(m, SpectralNorm)]

    def part(name: str, t0: float) -> float:
        t = time.process_time()
        cost[name] += t - t0
        return t

    lat = model.config.latent_dim
    w = model.g.conv1.weight  # as the model under test stores its convolutions
    nhwc = w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    for step in range(1, args.warmup + args.steps + 1):
        if step == args.warmup + 1:
            cost.clear()
        cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)
        cast.__enter__()
        t = time.process_time()
        real = tr.real_batch(step)
        rng = tr.step_rng(step)
        ctx = StepContext(step, tr.optimizers, tr.scalers, None)
        x = real.image.contiguous(memory_format=fmt)
        y = real.label
        assert y is not None
        b = x.shape[0]
        t = part("data: batch + float + step rng", t)
        with torch.no_grad():
            fake = model.g(torch.randn(b, lat, generator=rng), y)
        t = part("G forward (no grad, for D)", t)
        both = model.augment(torch.cat([x, fake]), rng)
        t = part("DiffAugment + cat (D step)", t)
        logits = model.d(both, torch.cat([y, y]))
        loss_d = F.relu(1.0 - logits[:b]).mean() + F.relu(1.0 + logits[b:]).mean()
        t = part("D forward (128 rows)", t)
        ctx.optimize("d", loss_d)
        t = part("D backward + clip + Adam", t)
        for p in model.d.parameters():
            p.requires_grad_(False)
        fake = model.g(torch.randn(b, lat, generator=rng), y)
        t = part("G forward (grad)", t)
        g_logits = model.d(model.augment(fake, rng), y)
        loss_g = -g_logits.mean()
        t = part("D forward in G step (+ DiffAugment)", t)
        ctx.optimize("g", loss_g)
        for p in model.d.parameters():
            p.requires_grad_(True)
        t = part("G backward through D + clip + Adam", t)
        cast.__exit__(None, None, None)
        ema_update(model.g_ema, model.g, 0.999)
        t = part("EMA update", t)
        d_real, d_fake = logits[:b].detach(), logits[b:].detach()
        metrics = {
            "loss_d": float(loss_d.detach()),
            "loss_g": float(loss_g.detach()),
            "d_real_acc": float((d_real > 0).float().mean()),
            "d_fake_acc": float((d_fake < 0).float().mean()),
        }
        t = part("metrics (.item)", t)
        for mon in tr.monitors:
            mon(model, step, metrics)
        t = part("divergence + r_t monitors", t)
        if step % 50 == 0:  # the recipe checks collapse every 500 steps; 1/50 here, scaled below
            collapse(model, step, metrics)
            model.train()
            cost["collapse monitor (every 500 steps)"] += (time.process_time() - t) / 10
            t = time.process_time()
    # spectral-norm power iterations, measured alone: 3 D forwards per step each run one
    t = time.process_time()
    for _ in range(args.steps):
        for m in sn_mods:
            for _ in range(3):
                m._power(m._u.new_empty(0), 0)  # call overhead only
    for mod in model.d.modules():
        plist = getattr(mod, "parametrizations", None)
        if plist is not None:
            w = plist["weight"].original.detach().flatten(1)
            sn = plist["weight"][0]
            t0 = time.process_time()
            for _ in range(3 * args.steps):
                sn._power(w, 1)
            cost["(inside D) spectral-norm power iterations"] += time.process_time() - t0
    n = args.steps
    total = sum(v for k, v in cost.items() if not k.startswith("(inside"))
    print(
        f"augmentgen from {augmentgen.__file__}; torch {torch.__version__}; {args.threads} thread(s); "
        f"{n} steps after {args.warmup} warm-up steps; d_width {args.d_width}; bf16 autocast {args.bf16}; channels-last {nhwc}\n"
    )
    print("| part | CPU ms / step | share |")
    print("|---|---|---|")
    for k, v in cost.items():
        print(f"| {k} | {1e3 * v / n:.1f} | {v / total:.0%} |")
    print(f"| **total** | **{1e3 * total / n:.1f}** | |")


if __name__ == "__main__":
    main()
