"""Built-in text-to-image GAN: images from the sentence embedding of a caption, trainable on a CPU.

Design, and why (Reed et al. 2016, "Generative Adversarial Text to Image Synthesis",
https://arxiv.org/abs/1605.05396):
- The caption is a unit sentence embedding ``t`` (MiniLM-L6, 384-d, from ``text_encoders``);
  the model never sees token ids, so any prompt the encoder can read is a valid condition.
- Generator: the cGAN's DCGAN body (``cgan.py``), with ``[z, c]`` at the input and FiLM
  BatchNorm whose gain and bias are linear in ``c = text_proj(t)`` in every block (the
  continuous version of conditional BN).
- Discriminator: the cGAN's spectrally normalised body with a projection head on the text,
  ``psi(h) + <phi(t), h>`` (Miyato & Koyama 2018). It is *matching-aware*: a real image with a
  caption of another class is a negative next to the fake one, so D must judge text-image
  agreement, not only realism.
- GAN-INT: part of each G batch is conditioned on interpolations of two captions of the same
  class, which fills the embedding space between training captions so unseen prompts land on
  the manifold G was trained on.
- The caption bank (embeddings, labels and texts) lives in the model: training draws captions
  per image from it, and ``generate(labels)`` draws a prompt of the label's class from it, so
  the label-driven code paths (trainer grids, collapse monitor, CAS, shard sources) render
  prompts without knowing about text. ``set_captions`` swaps in other prompts (e.g. held-out
  LLM-written ones) before rendering.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augmentgen.core.batch import Batch
from augmentgen.core.registry import GENERATORS
from augmentgen.core.rng import RNG, torch_rng
from augmentgen.generators import checkpoint as ckpt
from augmentgen.generators.common import condition_labels, d_stats, draw_latents, ema_update, warmup_decay
from augmentgen.generators.diffaugment import DiffAugment
from augmentgen.generators.layers import build, count_parameters
from augmentgen.generators.t2i_nets import (
    T2IConfig,
    TextDiscriminator,
    TextGenerator,
    _frozen,
    _uniform,
    class_prototypes,
    mismatched_labels,
)

KIND = "t2i"
__all__ = ["KIND", "T2IConfig", "TextToImageGAN", "class_prototypes", "mismatched_labels", "mode_seeking_ratio"]


# ---- the model ---------------------------------------------------------------------------------------


def mode_seeking_ratio(x1: Tensor, x2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
    """Mean image distance over mean latent distance of paired samples (MSGAN's ``lz``), a scalar.

    Shape:
        x1, x2: ``[P, C, H, W]``; z1, z2: ``[P, Z]``.

    Example:
        >>> x, z = torch.zeros(2, 1, 2, 2), torch.zeros(2, 3)
        >>> float(mode_seeking_ratio(x, x + 0.5, z, z + 1.0))
        0.5
    """
    return (x1 - x2).abs().mean() / (z1 - z2).abs().mean().clamp_min(1e-8)


@GENERATORS.register(KIND)
class TextToImageGAN(nn.Module):
    """A text-conditioned GAN that renders prompts (or labels, via its caption bank) as labeled images.

    Args:
        config: architecture, loss and caption settings; defaults suit 28x28 gray images and MiniLM.
        rng: CPU ``torch.Generator`` for the initial weights (default: seed 0).
        encoder: a ``TextEncoder`` for prompts; default: ``load_text_encoder(config.text_encoder)`` on first use.

    Shape:
        ``generate(prompts or labels, n, rng)`` -> Batch ``[n, C, S, S]`` float in [0, 1], ``label`` ``[n]``,
        ``meta["prompt"]`` (one text per row).

    Example:
        >>> m = TextToImageGAN(T2IConfig(num_classes=2, image_size=8, text_dim=4, g_width=4, d_width=4))
        >>> m.set_captions(["a", "b"], [0, 1], torch.eye(4)[:2])
        >>> m.generate([1, 0], 2, torch.Generator().manual_seed(0)).label.tolist()
        [1, 0]
    """

    kind = KIND
    bank_emb: Tensor
    bank_label: Tensor
    class_text: Tensor
    text_mean: Tensor

    def __init__(
        self, config: T2IConfig | None = None, *, rng: torch.Generator | None = None, encoder: Any = None
    ) -> None:
        super().__init__()
        self.config = config or T2IConfig()
        g = rng if rng is not None else torch_rng(0, KIND, "init")
        self.g = build(lambda: TextGenerator(self.config), g)
        self.d = build(lambda: TextDiscriminator(self.config), g)
        self.g_ema = copy.deepcopy(self.g).eval()
        _frozen(self.g_ema, True)
        self.augment = DiffAugment.from_policy(self.config.diffaugment)
        self.encoder = encoder
        c, p = self.config, self.config.bank_size
        self.register_buffer("bank_emb", torch.zeros(p, c.text_dim))
        self.register_buffer("bank_label", torch.zeros(p, dtype=torch.int64))
        self.register_buffer("class_text", torch.zeros(c.num_classes, c.text_dim))
        if c.center_text:
            self.register_buffer("text_mean", torch.zeros(c.text_dim))
        self.bank_texts: list[str] = [""] * p

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def device(self) -> torch.device:
        return self.g.fc.weight.device

    def train(self, mode: bool = True) -> TextToImageGAN:
        super().train(mode)
        self.g_ema.eval()  # sampling always uses running BN statistics
        return self

    # ---- captions -----------------------------------------------------------------------------
    def set_captions(self, texts: Sequence[str], labels: Sequence[int] | Tensor, embeddings: Tensor) -> None:
        """Replace the caption bank: training draws from it, ``generate(labels)`` renders it.

        Args:
            texts: one caption per row.
            labels: the class of each caption, in ``[0, num_classes)``; every class needs one.
            embeddings: ``[N, text_dim]`` sentence embeddings of ``texts`` (normalised here).
        """
        lab = torch.as_tensor(labels, dtype=torch.int64).reshape(-1).cpu()
        emb = torch.as_tensor(embeddings, dtype=torch.float32).detach().cpu()
        n, c = len(texts), self.num_classes
        if emb.ndim != 2 or emb.shape != (n, self.config.text_dim) or lab.numel() != n:
            raise ValueError(
                f"set_captions: {n} texts need labels [{n}] and embeddings [{n}, {self.config.text_dim}], "
                f"got labels {list(lab.shape)} and embeddings {list(emb.shape)}"
            )
        if n and (int(lab.min()) < 0 or int(lab.max()) >= c):
            raise ValueError(
                f"set_captions: labels must be in [0, {c}), got [{int(lab.min())}, {int(lab.max())}]"
            )
        missing = sorted(set(range(c)) - set(lab.tolist()))
        if missing:
            raise ValueError(f"set_captions: classes {missing} have no caption")
        order = torch.argsort(lab, stable=True)  # class-major, so a class is one contiguous slice
        dev = self.device
        self.bank_emb = F.normalize(emb[order], dim=1).to(dev)
        self.bank_label = lab[order].to(dev)
        self.bank_texts = [str(texts[i]) for i in order.tolist()]
        self.class_text = class_prototypes(self.bank_emb, self.bank_label, c)
        if self.config.center_text:
            # mean of the class prototypes, so a class with more captions does not pull the centre
            self.text_mean = self.class_text.mean(0)
        self.config.bank_size = n

    def _bank_slices(self) -> tuple[Tensor, Tensor]:
        if self.config.bank_size == 0:
            raise ValueError(
                "TextToImageGAN has no caption bank: call set_captions(texts, labels, embeddings)"
            )
        counts = torch.bincount(self.bank_label, minlength=self.num_classes)
        return torch.cumsum(counts, 0) - counts, counts  # offsets, counts

    def draw_captions(self, labels: Tensor, rng: RNG) -> Tensor:
        """Row indices into the caption bank: one uniformly drawn caption of each label's class."""
        offsets, counts = self._bank_slices()
        u = _uniform(rng, labels.numel(), labels.device)
        k = counts[labels]
        return offsets[labels] + (u * k).long().clamp(max=k - 1)

    def encode(self, prompts: Sequence[str]) -> Tensor:
        """Unit embeddings of ``prompts`` with the model's text encoder. Shape: ``[N, text_dim]``."""
        if self.encoder is None:
            from augmentgen.generators.text_encoders import load_text_encoder

            self.encoder = load_text_encoder(self.config.text_encoder)
        emb = self.encoder.encode(list(prompts))
        if emb.shape[-1] != self.config.text_dim:
            raise ValueError(
                f"text encoder {self.config.text_encoder!r} gives {emb.shape[-1]}-d embeddings, "
                f"the model was trained on {self.config.text_dim}-d"
            )
        return F.normalize(emb.float(), dim=1).to(self.device)

    def classify_text(self, embeddings: Tensor) -> Tensor:
        """The class whose caption prototype is nearest (cosine) to each embedding. Shape: ``[N, D]`` -> ``[N]``."""
        self._bank_slices()
        return (embeddings.to(self.class_text) @ self.class_text.t()).argmax(1)

    # ---- sampling -----------------------------------------------------------------------------
    def sampler(self) -> nn.Module:
        """The network ``generate`` uses: the EMA generator, or the raw one when ``ema_decay`` is 0."""
        return self.g_ema if self.config.ema_decay > 0 else self.g

    def _condition(
        self, condition: Tensor | list[Any] | int, n: int, rng: RNG, labels: Any
    ) -> tuple[Tensor, Tensor, list[str]]:
        if isinstance(condition, str):
            condition = [condition]
        items = list(condition) if isinstance(condition, (list, tuple)) else None
        if items is None or not any(isinstance(c, (str, tuple)) for c in items):
            if labels is not None:
                raise TypeError("generate: labels= goes with prompts; with class ids the ids are the labels")
            lab = condition_labels(condition, n, self.num_classes, self.device)
            rows = self.draw_captions(lab, rng)
            return self.bank_emb[rows], lab, [self.bank_texts[i] for i in rows.tolist()]
        texts: list[str] = []
        pair_labels: list[int] = []
        for i, c in enumerate(items):
            if isinstance(c, tuple) and len(c) == 2 and isinstance(c[1], str):
                pair_labels.append(int(c[0]))
                texts.append(c[1])
            elif isinstance(c, str):
                texts.append(c)
            else:
                raise TypeError(
                    f"generate: condition[{i}] must be a prompt or a (label, prompt) pair, got {c!r}"
                )
        if pair_labels and len(pair_labels) != len(texts):
            raise TypeError("generate: mix of prompts and (label, prompt) pairs in condition")
        if len(texts) == 1 and n != 1:
            texts = texts * n
            pair_labels = pair_labels * n
        if len(texts) != n:
            raise ValueError(f"generate: condition has {len(texts)} prompts but n={n}")
        emb = self.encode(texts) if n else torch.zeros(0, self.config.text_dim, device=self.device)
        if labels is not None:
            lab = condition_labels(labels, n, self.num_classes, self.device)
        elif pair_labels:
            lab = condition_labels(pair_labels, n, self.num_classes, self.device)
        else:
            lab = self.classify_text(emb).to(self.device)
        return emb, lab, texts

    @torch.no_grad()
    def generate(
        self,
        condition: Tensor | list[Any],
        n: int,
        rng: RNG,
        *,
        labels: Tensor | Sequence[int] | None = None,
        temperature: float = 1.0,
        chunk: int = 1024,
    ) -> Batch:
        """``n`` images of ``condition``: prompts, ``(label, prompt)`` pairs, or class ids.

        Class ids render a caption of that class drawn from the bank (the draw comes from ``rng``
        after z). Prompts without labels get the class of the nearest caption prototype; pass
        ``labels=`` (or pairs) to set the prompt's class. ``temperature`` scales z. The same
        ``rng`` state gives the same images.
        """
        z = draw_latents(rng, n, self.config.latent_dim, self.device) * temperature
        t, lab, texts = self._condition(condition, n, rng, labels)
        t = self._centered(t)
        net = self.sampler()
        was_training = net.training
        net.eval()
        s = self.config.image_size
        out = (
            torch.cat([net(z[i : i + chunk], t[i : i + chunk]) for i in range(0, n, chunk)])
            if n
            else z.new_zeros((0, self.config.channels, s, s))
        )
        net.train(was_training)
        return Batch(image=out.clamp(0, 1), label=lab, meta={"generator": [KIND] * n, "prompt": texts})

    # ---- training -----------------------------------------------------------------------------
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"g": list(self.g.parameters()), "d": list(self.d.parameters())}

    def default_optim(self) -> dict[str, dict[str, Any]]:
        # the cGAN's settings: TTUR (D learns faster), beta1 = 0 as in SNGAN/BigGAN
        return {"g": {"lr": 2e-4, "betas": (0.0, 0.99)}, "d": {"lr": 4e-4, "betas": (0.0, 0.99)}}

    def _centered(self, t: Tensor) -> Tensor:
        """What the networks see of a unit caption embedding (centred on the bank when ``center_text``)."""
        if not self.config.center_text:
            return t
        return F.normalize(t - self.text_mean, dim=1)

    def _noisy(self, t: Tensor, rng: torch.Generator) -> Tensor:
        if self.config.text_noise <= 0:
            return t
        eps = torch.randn(t.shape, generator=rng, device=rng.device).to(t)
        return F.normalize(t + self.config.text_noise * eps, dim=1)

    def _interpolated(self, y: Tensor, rng: torch.Generator) -> Tensor:
        """Caption embeddings for G: a share ``interpolate`` of rows mixes two captions of the row's class."""
        a = self.bank_emb[self.draw_captions(y, rng)]
        if self.config.interpolate <= 0:
            return a
        b = self.bank_emb[self.draw_captions(y, rng)]
        u = _uniform(rng, y.numel(), y.device)
        w = _uniform(rng, y.numel(), y.device)[:, None]
        mixed = F.normalize(w * a + (1.0 - w) * b, dim=1)
        return torch.where((u < self.config.interpolate)[:, None], mixed, a)

    def discriminator_negatives(self, y: Tensor, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """Bank rows of matching captions and of mismatched ones (another class) for real images ``y``."""
        match = self.draw_captions(y, rng)
        mismatch = self.draw_captions(mismatched_labels(y, self.num_classes, rng), rng)
        return match, mismatch

    def _d_terms(self, real: Tensor, fake: Tensor, mis: Tensor) -> Tensor:
        m = self.config.mismatch_weight
        if self.config.loss == "hinge":
            return (
                F.relu(1.0 - real).mean() + (1 - m) * F.relu(1.0 + fake).mean() + m * F.relu(1.0 + mis).mean()
            )
        return F.softplus(-real).mean() + (1 - m) * F.softplus(fake).mean() + m * F.softplus(mis).mean()

    def training_step(self, real: Batch, rng: torch.Generator, ctx: Any) -> dict[str, float]:
        """One matching-aware D update (``d_steps`` of them) and one G update; returns scalar metrics."""
        if real.label is None:
            raise ValueError("TextToImageGAN.training_step: the real batch needs labels")
        x, y = real.image, real.label
        b, zd = x.shape[0], self.config.latent_dim
        _frozen(self.d, False)
        for _ in range(self.config.d_steps):
            match, mis = self.discriminator_negatives(y, rng)
            t, t_mis = self._centered(self.bank_emb[match]), self._centered(self.bank_emb[mis])
            with torch.no_grad():
                fake = self.g(torch.randn(b, zd, generator=rng, device=rng.device).to(x), self._noisy(t, rng))
            both = self.augment(torch.cat([x, fake, x]), rng)  # one DiffAugment call over all rows
            logits = self.d(both, torch.cat([t, t, t_mis]))
            d_real, d_fake, d_mis = logits[:b], logits[b : 2 * b], logits[2 * b :]
            loss_d = self._d_terms(d_real, d_fake, d_mis)
            ctx.optimize("d", loss_d)
        _frozen(self.d, True)  # no D weight gradients in the G step
        t_g = self._centered(self._interpolated(y, rng))
        z = torch.randn(b, zd, generator=rng, device=rng.device).to(x)
        t_noisy = self._noisy(t_g, rng)
        half = b // 2 if self.config.mode_seeking > 0 else 0
        if half:  # rows i and b - half + i share a caption (noise included) and differ in z
            t_g, t_noisy = torch.cat([t_g[: b - half], t_g[:half]]), torch.cat([t_noisy[: b - half], t_noisy[:half]])
        fake = self.g(z, t_noisy)
        g_logits = self.d(self.augment(fake, rng), t_g)
        loss_g = -g_logits.mean() if self.config.loss == "hinge" else F.softplus(-g_logits).mean()
        extra: dict[str, float] = {}
        if half:
            ratio = mode_seeking_ratio(fake[:half], fake[b - half :], z[:half], z[b - half :])
            loss_g = loss_g + self.config.mode_seeking / (ratio + 1e-5)
            extra["ms_ratio"] = float(ratio.detach())
        ctx.optimize("g", loss_g)
        _frozen(self.d, False)
        ema_update(self.g_ema, self.g, warmup_decay(self.config.ema_decay, ctx.step))
        return {**d_stats(loss_d, loss_g, d_real, d_fake, mismatch=d_mis), **extra}

    # ---- files --------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls, data: dict[str, Any], where: str = "model", *, rng: torch.Generator | None = None
    ) -> TextToImageGAN:
        """Build a fresh model from a config mapping (a recipe's ``model:`` section).

        A ``captions`` key names a caption bank folder (``t2i_captions.write_caption_bank``) whose
        captions become the training bank; without it, call ``set_captions`` before training.
        """
        cfg = dict(data)
        bank = cfg.pop("captions", None)
        model = cls(ckpt.config_from_dict(T2IConfig, cfg, where), rng=rng)
        if bank is not None:
            from augmentgen.generators.t2i_captions import read_caption_bank

            texts, labels, emb = read_caption_bank(bank)
            try:
                model.set_captions(texts, labels, emb)
            except ValueError as e:
                raise ValueError(f"{where}.captions ({bank}): {e}") from e
        return model

    def save_pretrained(self, directory: str | Path, meta: dict[str, Any] | None = None) -> None:
        """Write ``config.json`` (caption texts in ``meta.captions``) + ``model.safetensors`` (G, EMA G, D, bank)."""
        body = {**(meta or {}), "captions": list(self.bank_texts)}
        ckpt.save_model(directory, KIND, dataclasses.asdict(self.config), self, body)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: torch.device | str = "cpu", encoder: Any = None, **kwargs: Any
    ) -> TextToImageGAN:
        """Rebuild from ``save_pretrained`` output; a checkpoint of another kind or shape is a ValueError."""
        if kwargs:
            raise TypeError(f"TextToImageGAN.from_pretrained: unexpected arguments {sorted(kwargs)}")
        where = f"{Path(directory) / ckpt.CONFIG_NAME}"

        def make(cfg: dict[str, Any]) -> nn.Module:
            return cls(ckpt.config_from_dict(T2IConfig, cfg, where), encoder=encoder)

        model, body = ckpt.load_model(directory, KIND, make, device)
        assert isinstance(model, TextToImageGAN)
        texts = body.get("meta", {}).get("captions", [])
        if not isinstance(texts, list) or len(texts) != model.config.bank_size:
            raise ValueError(f"{where}: meta.captions must list {model.config.bank_size} caption texts")
        model.bank_texts = [str(t) for t in texts]
        return model.eval()

    def summary(self) -> dict[str, int]:
        """Parameter counts of the parts."""
        return {"generator": count_parameters(self.g), "discriminator": count_parameters(self.d)}
