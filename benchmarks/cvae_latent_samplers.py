"""Which latent sampler of a low-data CVAE buys accuracy? N(0, I), per-image posterior, KDE, interpolation.

Takes a run folder of the low-data recipe (its CVAE and classifier settings, trained on the
real subset only) and a pipeline JSON for the classical copies; for each sampler, 200 images
per class from the CVAE's decoder, mixed with real + classical, against real + classical alone
on seeds 0-2. Grids of each sampler go to /tmp/cvae_sampler_{mode}.png. Modes: ``prior``
(N(0, I)), ``post`` (a real image's posterior), ``kde`` (a real image's latent plus Silverman's
bandwidth times the class covariance), ``interp`` (a random point between two real latents),
``pooled`` (the KDE over all classes' latents, decoded with the class's label; ``pooled0.5``:
half the rows so, half from the class's own KDE).

    python benchmarks/cvae_latent_samplers.py runs/low10_s1000 '{"transforms": [...]}' prior post kde interp

Prints one JSON line per sampler (accuracies, mean, paired gain over real + classical).
"""

import json
import statistics
import sys
from pathlib import Path

import torch

import augmentgen.generators  # noqa: F401
import augmentgen.ops  # noqa: F401
from augmentgen.core.batch import Batch
from augmentgen.core.rng import derive_seed, torch_rng
from augmentgen.eval.classifier import train_classifier
from augmentgen.eval.protocol import _concat, augment_copies
from augmentgen.eval.train_job import _classifier_kwargs, load_data
from augmentgen.generators import ConditionalVAE
from augmentgen.generators.images import save_grid
from augmentgen.pipeline import Pipeline
from augmentgen.recipes import load_recipe


def main() -> None:  # noqa: C901
    torch.set_num_threads(1)
    run = Path(sys.argv[1])
    modes = sys.argv[3:]
    r = load_recipe(run / "recipe.yaml")
    r = r.model_copy(update={"pipeline": json.loads(sys.argv[2])})
    train, test = load_data(r.data)
    real = _concat(train.to_batch(uint8=True))
    test_b = test.to_batch(uint8=True)
    pipe = Pipeline.from_dict(r.pipeline)
    vae = ConditionalVAE.from_pretrained(run / "generators" / "cvae" / "model").eval()
    kw = {
        **_classifier_kwargs(r.classifier, train),
        "steps": r.evaluate.steps,
        "augment": r.evaluate.shift_augment,
    }
    with torch.no_grad():
        mu, lv = vae.encoder(real.as_float().image, real.label)
    var = lv.exp()
    y = real.label
    PER = 200

    @torch.no_grad()
    def sample(mode, seed):
        g = torch_rng(seed, "modes", mode)
        zs, ls = [], []
        for c in range(10):
            m, v = mu[y == c], var[y == c]
            n, d = m.shape
            eps = torch.randn(PER, d, generator=g)
            if mode == "prior":
                z = eps
            elif mode.startswith("post"):
                t = float(mode[4:] or 1)
                i = torch.randint(n, (PER,), generator=g)
                z = m[i] + eps * v[i].sqrt() * t
            elif mode.startswith("kde"):
                t = float(mode[3:] or 1)
                h = (4 / (d + 2)) ** (1 / (d + 4)) * n ** (-1 / (d + 4)) * t
                L = torch.linalg.cholesky(torch.cov(m.T) + 1e-6 * torch.eye(d))
                i = torch.randint(n, (PER,), generator=g)
                z = m[i] + h * eps @ L.T
            elif mode.startswith("pooled"):
                # a KDE over every class's latents, decoded with this class's label: pose, size
                # and brightness of the other classes' images carried over (``pooled<share>``:
                # that share of the rows, the rest from the class's own KDE)
                share = float(mode[6:] or 1)
                ma = mu
                da = ma.shape[0]
                h_all = (4 / (d + 2)) ** (1 / (d + 4)) * da ** (-1 / (d + 4))
                L_all = torch.linalg.cholesky(torch.cov(ma.T) + 1e-6 * torch.eye(d))
                z_all = ma[torch.randint(da, (PER,), generator=g)] + h_all * eps @ L_all.T
                h = (4 / (d + 2)) ** (1 / (d + 4)) * n ** (-1 / (d + 4))
                L = torch.linalg.cholesky(torch.cov(m.T) + 1e-6 * torch.eye(d))
                z_own = m[torch.randint(n, (PER,), generator=g)] + h * eps @ L.T
                z = torch.where(torch.rand(PER, 1, generator=g) < share, z_all, z_own)
            elif mode.startswith("interp"):
                i = torch.randint(n, (PER,), generator=g)
                j = torch.randint(n, (PER,), generator=g)
                a = torch.rand(PER, 1, generator=g)
                z = a * m[i] + (1 - a) * m[j]
            zs.append(z)
            ls.append(torch.full((PER,), c))
        z, lab = torch.cat(zs), torch.cat(ls)
        img = vae.mean_image(vae.decoder(z, lab))
        return Batch(image=(img.clamp(0, 1) * 255).round().to(torch.uint8), label=lab)

    base, rcs = {}, {}
    for seed in (0, 1, 2):
        rcs[seed] = _concat(
            real, augment_copies(real, pipe, r.evaluate.classical_copies, derive_seed(seed, "classical"))
        )
        base[seed] = train_classifier(rcs[seed], seed=seed, test=test_b, **kw).test_accuracy
    print(json.dumps({"mode": "baseline", "acc": base, "mean": statistics.fmean(base.values())}), flush=True)
    for mode in modes:
        s = sample(mode, 0)
        idx = torch.cat([(s.label == c).nonzero()[:10, 0] for c in range(10)])
        save_grid(f"/tmp/cvae_sampler_{mode}.png", s.image[idx].float() / 255, nrow=10, scale=2)
        accs = []
        for seed in (0, 1, 2):
            syn = sample(mode, seed)
            accs.append(train_classifier(_concat(rcs[seed], syn), seed=seed, test=test_b, **kw).test_accuracy)
        gains = [a - base[s_] for a, s_ in zip(accs, (0, 1, 2))]
        print(
            json.dumps(
                {
                    "mode": mode,
                    "acc": accs,
                    "mean": statistics.fmean(accs),
                    "gain": statistics.fmean(gains),
                    "gain_std": statistics.stdev(gains),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
