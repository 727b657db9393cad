"""Prompt benchmarks: LLM load time and throughput, kept/dropped counts, diversity LLM vs template.

    .venv/bin/python benchmarks/prompts_bench.py generate --n 60 --out runs/prompts/fashion-mnist-llm.jsonl
    .venv/bin/python benchmarks/prompts_bench.py diversity --cache runs/prompts/fashion-mnist-llm.jsonl

``generate`` writes the Fashion-MNIST LLM prompt cache (one thread) and prints the load time
and per-class counts with wall and CPU time; ``diversity`` compares the cached LLM prompts with
as many template prompts per class: distinct-1/2 (unique n-grams / all n-grams) and the Vendi
score of their MiniLM embeddings (Friedman & Dieng 2023, https://arxiv.org/abs/2210.02410).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from augmentgen.generators.llm_sampling import SamplingConfig
from augmentgen.generators.prompts import FASHION_MNIST_VOCAB, TemplatePrompts
from augmentgen.generators.prompts_cache import PromptCache
from augmentgen.generators.prompts_llm import PRODUCT_INSTRUCTION, LLMPrompts
from augmentgen.generators.text_encoders import load_text_encoder


def distinct_n(texts: list[str], n: int) -> float:
    """Unique word n-grams over all word n-grams of ``texts`` (Li et al. 2016)."""
    grams = [tuple(w[i : i + n]) for t in texts for w in [t.lower().split()] for i in range(len(w) - n + 1)]
    return len(set(grams)) / max(len(grams), 1)


def vendi(emb: torch.Tensor) -> float:
    """exp(entropy of the eigenvalues of K/N), K the cosine-similarity matrix of unit rows."""
    k = (emb @ emb.T).double() / emb.shape[0]
    ev = torch.linalg.eigvalsh(k).clamp_min(0)
    ev = ev[ev > 1e-12]
    return float(torch.exp(-(ev * ev.log()).sum()))


def generate(args: argparse.Namespace) -> None:
    llm = LLMPrompts(
        FASHION_MNIST_VOCAB, instruction=args.instruction or PRODUCT_INSTRUCTION, cache=args.out,
        sampling=SamplingConfig(temperature=args.temperature, batch_size=args.batch_size),
    )  # fmt: skip
    t0, c0 = time.perf_counter(), time.process_time()
    llm.load()
    print(f"load: wall {time.perf_counter() - t0:.1f} s, cpu {time.process_time() - c0:.1f} s", flush=True)
    classes = args.classes.split(",") if args.classes else llm.class_names
    tot = {"kept": 0, "candidates": 0, "replies": 0, "new_tokens": 0, "wall_s": 0.0, "cpu_s": 0.0}
    for c in classes:
        r = llm.generate(c, args.n, seed=args.seed)
        rec = r.record
        for k in tot:
            tot[k] += rec[k]
        print(json.dumps({k: rec[k] for k in ("class", *tot, "dropped")}), flush=True)
    print(
        f"total: {tot['kept']} kept of {tot['candidates']} candidates from {tot['replies']} replies, "
        f"{tot['new_tokens']} tokens; wall {tot['wall_s']:.0f} s, cpu {tot['cpu_s']:.0f} s; "
        f"kept prompts/s: {tot['kept'] / tot['wall_s']:.3f} wall, {tot['kept'] / tot['cpu_s']:.3f} cpu; "
        f"tokens/s: {tot['new_tokens'] / tot['wall_s']:.1f} wall, {tot['new_tokens'] / tot['cpu_s']:.1f} cpu"
    )


def diversity(args: argparse.Namespace) -> None:
    enc = load_text_encoder("minilm")
    tp = TemplatePrompts.fashion_mnist()
    runs = {r.record["class"]: r for r in PromptCache(args.cache).runs()}
    rows = []
    print("| class | source | n | distinct-1 | distinct-2 | Vendi (MiniLM) |")
    print("|---|---|---:|---:|---:|---:|")
    for v in FASHION_MNIST_VOCAB:
        if v.name not in runs:
            continue
        llm_texts = runs[v.name].texts
        n = len(llm_texts)
        for source, texts in (("llm", llm_texts), ("template", tp.prompts(v.name, n, seed=args.seed))):
            row = (distinct_n(texts, 1), distinct_n(texts, 2), vendi(enc.encode(texts)))
            rows.append((source, *row))
            print(f"| {v.name} | {source} | {n} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.2f} |")
    for source in ("llm", "template"):
        m = np.array([r[1:] for r in rows if r[0] == source]).mean(0)
        print(f"| mean | {source} | | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--n", type=int, default=60)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--classes", default="")
    g.add_argument("--temperature", type=float, default=0.7)
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--instruction", default="", help="per-class instruction (default: PRODUCT_INSTRUCTION)")
    g.add_argument("--out", type=Path, default=Path("runs/prompts/fashion-mnist-llm.jsonl"))
    d = sub.add_parser("diversity")
    d.add_argument("--cache", type=Path, default=Path("runs/prompts/fashion-mnist-llm.jsonl"))
    d.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    generate(args) if args.cmd == "generate" else diversity(args)


if __name__ == "__main__":
    main()
