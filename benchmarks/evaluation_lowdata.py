"""Low-data evaluation variants: what could make real + classical + synthetic beat real + classical?

Takes a finished run folder of ``augmentgen run/evaluate`` (its recipe, reference classifier and
generators, all trained on the same real subset only) and trains the recipe's evaluation
classifier on real + classical copies + synthetic images chosen in different ways, paired
with a real + classical baseline on the same seeds:

- ``per_class``: generated images per class;
- ``gens``: which generators (``cgan+cvae``, ``cgan``, ``cvae``);
- ``oversample``: generate this many times more and keep, per class, the images the run's
  reference classifier (trained on the same subset: no peeking) gives the highest probability
  of their label (confidence filtering);
- ``select``: with ``oversample``, ``confident`` keeps the most confident images, ``hard`` the
  least (the images the classifier has not learned yet: feedback-guided selection, Askari-Hemmat
  et al. 2023);
- ``share``: repeat the real + classical rows so synthetic rows are about this share of the
  training set (the mixing ratio, ``protocol.repeat_to_share``); ``none`` keeps the natural share;
- ``schedule``: ``mix`` trains on everything at once; ``pretrain`` spends half the steps on
  everything, then fine-tunes on real + classical alone for the other half;
- ``syn_ops``: 1 passes every generated image once through the classical ops too (as a
  ``Synthesize`` step followed by the ops does in a pipeline; ``--syn-pipeline`` names other ops
  for them); 0 (the protocol's) keeps them as drawn;
- ``temp``: the latent temperature of every chosen generator (``recipe``: each one's
  ``sample_temperature``);
- ``smooth``: label smoothing on the generated rows (``mix`` schedule only);
- ``smooth_real``: label smoothing on the real + classical rows, in both arms (the real +
  classical baseline is trained again with it), so a regularizer that helps any training set is
  not credited to the generated images.
- ``soft``: the generated rows learn ``1 - soft`` of their label and ``soft`` of a teacher's
  probabilities at temperature ``soft_t`` (knowledge distillation on the generated images only);
  ``teacher``: ``run`` (the run's reference classifier) or ``base`` (this seed's real + classical
  classifier, trained again): both saw the same real subset only.
- ``pool``: a CVAE's latents: this share of each class's draws comes from a kernel density over
  the latents of every class's real images (decoded with the class's label: the other classes'
  poses, sizes and brightness carried over), the rest from the class's own fitted prior.
- ``mix``: MixUp / CutMix on every training batch in both arms (``pipeline.LabelMix``; the real +
  classical baseline is trained again with it): ``none``, ``mixup`` (alpha 0.2), ``cutmix``
  (alpha 1) or ``both`` (MixUp 0.8 or CutMix 1.0, half the rows each, as DeiT trains). Excludes
  ``smooth``, ``smooth_real`` and ``soft``.
- ``control``: 1 replaces the generated rows by as many real + classical rows drawn again at
  random (seeded): the same training set size and step budget with no generated image, to tell
  the images' effect from that of a longer, reshuffled training set.

``--pipeline JSON`` replaces the recipe's classical ops (both arms), ``--steps`` the classifier
steps.

Example::

    .venv/bin/python benchmarks/evaluation_lowdata.py runs/low10 --seeds 0 1 2 \\
        --variant per_class=200 --variant per_class=1000 --variant per_class=200,oversample=5

Prints one JSON line per variant (mean, std, paired gain over real + classical, CPU seconds).
"""

from __future__ import annotations

import argparse
import copy
import fcntl
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import augmentgen.generators  # noqa: F401  (fills the registry)
import augmentgen.ops  # noqa: F401
from augmentgen.core.batch import Batch
from augmentgen.core.rng import derive_seed
from augmentgen.eval.classifier import ReferenceClassifier, train_classifier
from augmentgen.eval.protocol import (
    _concat,
    augment_copies,
    keep_confident,
    repeat_to_share,
    synthetic_set,
    train_with_synthetic,
)
from augmentgen.eval.train_job import _classifier_kwargs, load_data
from augmentgen.generators import ConditionalVAE, load_generator
from augmentgen.generators.checkpoint import write_json_atomic
from augmentgen.generators.latent_prior import fit_class_mixture
from augmentgen.pipeline import LabelMix, Pipeline
from augmentgen.recipes import load_recipe

# the ``mix`` variant's LabelMix settings
MIXES: dict[str, dict[str, float] | None] = {
    "none": None,
    "mixup": {"mixup_alpha": 0.2, "cutmix_alpha": 0.0},
    "cutmix": {"mixup_alpha": 0.0, "cutmix_alpha": 1.0},
    "both": {"mixup_alpha": 0.8, "cutmix_alpha": 1.0},
}


def label_mix(name: str, k: int, seed: int) -> LabelMix | None:
    """The ``mix`` variant ``name`` for ``k`` classes, its draws seeded by the evaluation seed."""
    spec = MIXES[name]
    return None if spec is None else LabelMix(k, seed=seed, **spec)


def parse_variant(text: str) -> dict[str, Any]:
    """``per_class=200,gens=cgan,oversample=5,share=0.5`` -> a dict with every key filled in."""
    v: dict[str, Any] = {
        "per_class": 200,
        "gens": "cgan+cvae",
        "oversample": 1,
        "share": "none",
        "temp": "recipe",
        "schedule": "mix",
        "syn_ops": 0,
        "select": "confident",
        "smooth": 0.0,
        "smooth_real": 0.0,
        "soft": 0.0,
        "soft_t": 1.0,
        "teacher": "run",
        "pool": 0.0,
        "control": 0,
        "mix": "none",
    }
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in v:
            raise ValueError(f"--variant {text!r}: unknown key {key!r}; known: {sorted(v)}")
        kind = float if key in ("smooth", "smooth_real", "soft", "soft_t", "pool") else int
        v[key] = value if key in ("gens", "share", "temp", "schedule", "select", "teacher", "mix") else kind(value)
    if v["select"] not in ("confident", "hard"):
        raise ValueError(f"--variant {text!r}: select must be 'confident' or 'hard', got {v['select']!r}")
    if (v["smooth"] or v["smooth_real"] or v["soft"]) and v["schedule"] != "mix":
        raise ValueError(f"--variant {text!r}: label smoothing and soft labels need schedule=mix")
    if v["soft"] and (v["smooth"] or v["smooth_real"]):
        raise ValueError(f"--variant {text!r}: soft labels exclude label smoothing")
    if v["mix"] not in MIXES:
        raise ValueError(f"--variant {text!r}: mix must be one of {sorted(MIXES)}, got {v['mix']!r}")
    if v["mix"] != "none" and (v["smooth"] or v["smooth_real"] or v["soft"]):
        raise ValueError(f"--variant {text!r}: mix excludes label smoothing and soft labels")
    if v["teacher"] not in ("run", "base"):
        raise ValueError(f"--variant {text!r}: teacher must be 'run' or 'base', got {v['teacher']!r}")
    return v


def save_baseline(path: Path, key: str, seed: int, accuracy: float) -> None:
    """Add one baseline accuracy to the folder's cache: read again and written whole under a lock,
    so two benchmarks on one folder keep each other's entries (and never read half a file)."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache = json.loads(path.read_text()) if path.is_file() else {}
        cache.setdefault(key, {})[str(seed)] = accuracy
        write_json_atomic(path, cache)


@torch.no_grad()
def pooled(gen: Any, real: Batch, share: float) -> Any:
    """A copy of ``gen`` whose CVAEs (an ensemble's members too) draw ``share`` of each class's
    latents from a kernel density over every class's real latents, the rest from their own prior."""
    gen = copy.deepcopy(gen)
    assert real.label is not None
    for m in getattr(gen, "members", [gen]):
        if not isinstance(m, ConditionalVAE):
            continue
        x = real.as_float().image.to(m.device)
        mu, lv = m.encoder(x, real.label.to(m.device))
        n = mu.shape[0]
        g = torch.Generator().manual_seed(0)
        # every point its own cluster: a Gaussian kernel, Silverman's bandwidth on the pooled covariance
        w1, m1, t1 = fit_class_mixture(mu.cpu(), lv.exp().cpu(), torch.zeros(n, dtype=torch.int64), 1, n, g)
        c = m.prior_weight.shape[0]
        w, mean, tril = m.prior_weight, m.prior_mean, m.prior_scale_tril
        m.prior_weight = torch.cat([w * (1 - share), share * w1[0].to(w).expand(c, -1)], 1)
        m.prior_mean = torch.cat([mean, m1[0].to(mean).expand(c, -1, -1)], 1)
        m.prior_scale_tril = torch.cat([tril, t1[0].to(tril).expand(c, -1, -1, -1)], 1)
    return gen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a run folder (recipe.yaml, classifier/, generators/)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variant", action="append", default=[], help="see the module docstring")
    ap.add_argument(
        "--steps", type=int, default=None, help="classifier steps in every arm (default: the recipe's)"
    )
    ap.add_argument(
        "--pipeline", default=None, help="JSON of a pipeline section replacing the recipe's classical ops"
    )
    ap.add_argument(
        "--syn-pipeline", default=None,
        help="JSON of a pipeline section the syn_ops variants pass the generated images through (default: the classical ops)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    r = load_recipe(args.run / "recipe.yaml")
    if args.pipeline is not None:
        r = r.model_copy(update={"pipeline": json.loads(args.pipeline)})
    train, test = load_data(r.data)
    real = _concat(train.to_batch(uint8=True))
    test_b = test.to_batch(uint8=True)
    pipe = Pipeline.from_dict(r.pipeline, where="pipeline")
    syn_pipe = pipe if args.syn_pipeline is None else Pipeline.from_dict(json.loads(args.syn_pipeline), where="--syn-pipeline")
    gens = {
        g.name: load_generator(args.run / "generators" / g.name / "model").eval()  # ensembles too
        for g in r.generators
    }
    clf = ReferenceClassifier.from_pretrained(args.run / "classifier")
    kw = {**_classifier_kwargs(r.classifier, train), "steps": args.steps or r.evaluate.steps or r.classifier.steps,
          "augment": r.evaluate.shift_augment}  # fmt: skip
    k = train.num_classes

    classical = {
        seed: _concat(real, augment_copies(real, pipe, r.evaluate.classical_copies, derive_seed(seed, "classical")))
        for seed in args.seeds
    }
    # the baseline is deterministic: its accuracies are cached in the run folder, keyed by what sets them
    cache_path = args.run / "evaluation_lowdata_baseline.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}

    def baseline(smooth_real: float, mix: str = "none") -> dict[int, float]:
        """Real + classical accuracy per seed, its rows learned with label smoothing ``smooth_real``
        and the ``mix`` variant's MixUp / CutMix."""
        # "layout": the classifier's weights are channels-last since 2026-11-30 (same values, other
        # float rounding): baselines cached before it are not reused
        parts = [r.data.model_dump(mode="json"), r.pipeline, r.evaluate.classical_copies, kw, {"layout": "channels_last"}]
        extra = ([smooth_real] if smooth_real else []) + ([{"mix": MIXES[mix]}] if mix != "none" else [])
        key = json.dumps(parts + extra, sort_keys=True, default=str)
        known = cache.setdefault(key, {})
        for seed in args.seeds:
            if str(seed) not in known:
                rc = classical[seed]
                eps = torch.full((rc.batch_size,), smooth_real) if smooth_real else None
                run = train_classifier(rc, seed=seed, test=test_b, label_smoothing=eps, mix=label_mix(mix, k, seed), **kw)
                known[str(seed)] = float(run.test_accuracy or 0.0)
                save_baseline(cache_path, key, seed, known[str(seed)])
        acc = {seed: float(known[str(seed)]) for seed in args.seeds}
        print(json.dumps({"variant": "real_classical", "steps": kw["steps"], "pipeline": r.pipeline,
                          "smooth_real": smooth_real, "mix": mix, "accuracy": acc, "mean": statistics.fmean(acc.values())}),
              flush=True)  # fmt: skip
        return acc

    bases = {(0.0, "none"): baseline(0.0)}

    for text in args.variant:
        v = parse_variant(text)
        c0 = time.process_time()
        bkey = (v["smooth_real"], v["mix"])
        if bkey not in bases:
            bases[bkey] = baseline(*bkey)
        base = bases[bkey]
        chosen = {name: gens[name] for name in v["gens"].split("+")}
        if v["pool"]:
            chosen = {name: pooled(g, real, v["pool"]) for name, g in chosen.items()}
        accs, gains = [], []
        for seed in args.seeds:
            temps = {g.name: g.sample_temperature for g in r.generators}
            if v["temp"] != "recipe":
                temps = {name: float(v["temp"]) for name in temps}
            syn = synthetic_set(chosen, k, v["per_class"] * v["oversample"], seed, temps)
            if v["oversample"] > 1:
                syn = keep_confident(syn, clf.predict_logits, k, v["per_class"], hardest=v["select"] == "hard")
            if v["syn_ops"]:
                syn = augment_copies(syn, syn_pipe, 1, derive_seed(seed, "synthetic-classical"))
            rc = classical[seed]
            if v["control"]:
                pick = torch.randint(rc.batch_size, (syn.batch_size,), generator=torch.Generator().manual_seed(seed))
                syn = rc.index(pick)
            share = None if v["share"] == "none" else float(v["share"])
            rows = repeat_to_share(rc, syn.batch_size, share)
            both = _concat(rows, syn)
            smoothing, soft = None, None
            if v["soft"]:
                # the generated rows learn (1 - soft) of their label and soft of a teacher's belief (at
                # temperature soft_t): the run's classifier, or this seed's real + classical model, both
                # trained on the same real subset only
                teacher = clf if v["teacher"] == "run" else train_classifier(rc, seed=seed, **kw).model
                with torch.no_grad():
                    belief = (teacher.predict_logits(syn.image).float() / v["soft_t"]).softmax(1)
                onehot = torch.nn.functional.one_hot(both.label, k).float()
                soft = onehot.clone()
                soft[rows.batch_size :] = (1 - v["soft"]) * onehot[rows.batch_size :] + v["soft"] * belief
            if v["smooth"] or v["smooth_real"]:
                smoothing = torch.cat(
                    [torch.full((rows.batch_size,), v["smooth_real"]), torch.full((syn.batch_size,), v["smooth"])]
                )
            run = train_with_synthetic(
                both, rc, v["schedule"], seed=seed, test=test_b, label_smoothing=smoothing, soft_targets=soft,
                mix=label_mix(v["mix"], k, seed), **kw,
            )  # fmt: skip
            acc = float(run.test_accuracy or 0.0)
            accs.append(acc)
            gains.append(acc - base[seed])
        print(json.dumps({
            "variant": v, "accuracy": accs, "mean": statistics.fmean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "gain_over_real_classical": statistics.fmean(gains),
            "gain_std": statistics.stdev(gains) if len(gains) > 1 else 0.0,
            "cpu_seconds": round(time.process_time() - c0, 1),
        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
