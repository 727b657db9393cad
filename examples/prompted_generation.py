"""Prompted generation with the built-in text-to-image GAN: captions in, labeled images out.

1. writes training captions per class with the seeded template grammar (``TemplatePrompts``)
   and embeds them once with the offline MiniLM sentence encoder;
2. trains a small ``TextToImageGAN`` (matching-aware discriminator) on the real images, each
   paired with a caption of its class, and saves it (``save_pretrained``);
3. reloads it (``from_pretrained``) and renders hand-written prompts it never saw, then checks:
   every image carries its prompt's class and names its prompt, the same seed gives the same
   images after the round trip, and a reference classifier trained on the real images agrees
   with the prompts' classes far more often than chance.

Run (the CI runs the digits setting, under a minute on one core)::

    .venv/bin/python examples/prompted_generation.py --out /tmp/prompted-example
    .venv/bin/python examples/prompted_generation.py --dataset fashion_mnist --steps 1500 --out /tmp/px

Exits non-zero when a check fails; the last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from augmentgen.data.sources import load_digits, load_fashion_mnist
from augmentgen.eval.classifier import ClassifierConfig, train_classifier
from augmentgen.generators import T2IConfig, TextToImageGAN, Trainer
from augmentgen.generators.config import TrainSpec
from augmentgen.generators.prompts import ClassVocab, TemplatePrompts
from augmentgen.generators.text_encoders import load_text_encoder

_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGITS = [
    ClassVocab(str(k), f"the handwritten digit {w}", (w, f"digit {w}", f"number {w}", f"{w} ({k})"), ("handwritten", "small"))
    for k, w in enumerate(_WORDS)
]  # fmt: skip
# prompts written by hand for this example: not sentences the grammars above can produce
HELD_OUT = {
    "digits": [f"someone wrote the number {w} with a pen" for w in _WORDS],
    "fashion_mnist": [
        "a plain white tee", "a pair of blue jeans", "a wool sweater for winter", "a summer dress",
        "a heavy winter coat", "beach flip-flops", "a checked flannel shirt", "white running shoes",
        "a leather handbag", "a brown leather ankle boot",
    ],
}  # fmt: skip


def check(ok: bool, message: str) -> None:
    """Fail with ``message`` unless ``ok`` (not ``assert``: it must hold under ``python -O`` too)."""
    if not ok:
        raise AssertionError(message)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=["digits", "fashion_mnist"], default="digits")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--captions-per-class", type=int, default=30)
    ap.add_argument(
        "--lr", type=float, default=1e-3, help="generator learning rate (the discriminator's is 2x)"
    )
    ap.add_argument("--per-prompt", type=int, default=20, help="images rendered per held-out prompt")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    digits = args.dataset == "digits"
    train = load_digits("train") if digits else load_fashion_mnist("train")
    size = train.image_shape[1]
    grammar = TemplatePrompts(DIGITS) if digits else TemplatePrompts.fashion_mnist()
    texts = [p for c in range(10) for p in grammar.prompts(c, args.captions_per_class, seed=0)]
    labels = torch.arange(10).repeat_interleave(args.captions_per_class)
    encoder = load_text_encoder("minilm")

    # 1-2. captions -> embeddings once, then the trainer every generator uses
    width = 16
    cfg = T2IConfig(
        image_size=size,
        g_width=width,
        d_width=width,
        latent_dim=16,
        cond_dim=32,
        text_dim=encoder.dim,
        center_text=True,
    )
    model = TextToImageGAN(cfg, encoder=encoder)
    model.set_captions(texts, labels, encoder.encode(texts))
    spec = TrainSpec(
        steps=args.steps, batch_size=64, log_every=50, sample_every=0, checkpoint_every=0, device="cpu",
        lr={"g": args.lr, "d": 2 * args.lr},  # a short run: 5x the long-run rates of the Fashion-MNIST model
    )  # fmt: skip
    result = Trainer(model, train.to_batch(uint8=True), spec, args.out / "t2i").fit()

    # 3. reload the saved model and render prompts it never saw, labeled with their classes
    loaded = TextToImageGAN.from_pretrained(args.out / "t2i" / "model", encoder=encoder)
    prompts = [(c, p) for c, p in enumerate(HELD_OUT[args.dataset]) for _ in range(args.per_prompt)]
    seen = set(texts)
    check(not any(p in seen for _, p in prompts), "a held-out prompt is also a training caption")
    batch = loaded.generate(prompts, len(prompts), torch.Generator().manual_seed(1))
    again = model.eval().generate(prompts, len(prompts), torch.Generator().manual_seed(1))
    want = torch.tensor([c for c, _ in prompts])
    check(batch.label is not None and torch.equal(batch.label, want), "labels are not the prompts' classes")
    check(batch.meta["prompt"] == [p for _, p in prompts], "meta['prompt'] does not name each image's prompt")
    check(torch.equal(batch.image, again.image), "the saved and reloaded model render different images")
    check(
        batch.image.shape == (len(prompts), 1, size, size),
        f"unexpected image shape {tuple(batch.image.shape)}",
    )

    clf = train_classifier(
        train.to_batch(uint8=True), seed=0, steps=150 if digits else 600, batch_size=64,
        config=ClassifierConfig(num_classes=10, channels=1, image_size=size, width=8),
    ).model  # fmt: skip
    pred = clf.predict_logits(batch.image).argmax(1).cpu()
    faithfulness = float((pred == want).float().mean())
    check(faithfulness > 0.3, f"prompt faithfulness {faithfulness:.2f} is not far above chance (0.10)")
    summary = {
        "dataset": args.dataset, "steps": result.step, "train_seconds": round(result.seconds, 1),
        "train_cpu_seconds": round(result.cpu_seconds, 1), "captions": len(texts), "held_out_prompts": 10,
        "images": len(prompts), "faithfulness": round(faithfulness, 4), "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
