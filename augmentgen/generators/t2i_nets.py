"""Parts of the built-in text-to-image GAN (``t2i.py``): config, FiLM BatchNorm, G and D, pure helpers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augmentgen.core.rng import RNG
from augmentgen.generators.diffaugment import DiffAugment
from augmentgen.generators.layers import d_body, sn


@dataclass
class T2IConfig:
    """Architecture, loss and caption settings of a TextToImageGAN.

    Args:
        num_classes: classes of the captions (labels of generated images).
        channels: image channels (1 gray, 3 RGB).
        image_size: square image side; a multiple of 4 (28 for Fashion-MNIST).
        latent_dim: size of z.
        text_dim: size of the sentence embedding (384 for MiniLM-L6).
        cond_dim: size of the projected text condition ``c`` in the generator.
        g_width: generator base width ``w``; blocks have 4w, 2w, w channels.
        d_width: discriminator base width.
        loss: ``"hinge"`` or ``"nonsaturating"``.
        ema_decay: EMA of generator weights for sampling; 0 samples the raw generator.
        diffaugment: DiffAugment policy (``color,translation,cutout``); "" disables.
        d_steps: discriminator updates per generator update.
        mismatch_weight: share of D's negative term given to real images with mismatched
            captions (Reed et al. 2016 use 0.5); 0 turns D into a plain conditional D.
        interpolate: share of each G batch conditioned on same-class caption interpolations (GAN-INT).
        text_noise: std of Gaussian noise on the unit caption embedding fed to G while training.
        center_text: subtract the caption bank's mean embedding (and renormalise) before the
            networks see a caption: sentence embeddings of one domain share a large common
            component ("a photo of ..."), and removing it leaves the part that tells classes apart.
        mode_seeking: weight of the mode-seeking term (Mao et al. 2019, "Mode Seeking GANs",
            https://arxiv.org/abs/1903.05628): the G batch is split into pairs that share a caption
            and differ in z, and G is penalised by ``1 / (|G(z1)-G(z2)| / |z1-z2| + 1e-5)``, so that
            a caption does not collapse to one image; 0 turns it off.
        text_encoder: ``text_encoders.load_text_encoder`` spec used to embed prompts at sampling.
        bank_size: rows of the caption bank stored with the model (set by ``set_captions``).
    """

    num_classes: int = 10
    channels: int = 1
    image_size: int = 28
    latent_dim: int = 64
    text_dim: int = 384
    cond_dim: int = 128
    g_width: int = 32
    d_width: int = 16
    loss: str = "hinge"
    ema_decay: float = 0.999
    diffaugment: str = ""
    d_steps: int = 1
    mismatch_weight: float = 0.5
    interpolate: float = 0.5
    text_noise: float = 0.05
    center_text: bool = False
    mode_seeking: float = 0.0
    text_encoder: str = "minilm"
    bank_size: int = 0

    def __post_init__(self) -> None:
        if self.image_size % 4 or self.image_size < 8:
            raise ValueError(f"T2IConfig.image_size must be a multiple of 4 and >= 8, got {self.image_size}")
        if self.loss not in ("hinge", "nonsaturating"):
            raise ValueError(f"T2IConfig.loss must be 'hinge' or 'nonsaturating', got {self.loss!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"T2IConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("mismatch_weight", "interpolate"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"T2IConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.text_noise < 0:
            raise ValueError(f"T2IConfig.text_noise must be >= 0, got {self.text_noise}")
        if self.mode_seeking < 0:
            raise ValueError(f"T2IConfig.mode_seeking must be >= 0, got {self.mode_seeking}")
        for name in ("num_classes", "channels", "latent_dim", "text_dim", "cond_dim", "g_width", "d_width"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"T2IConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_steps < 1 or self.bank_size < 0:
            raise ValueError(
                f"T2IConfig: d_steps >= 1 and bank_size >= 0, got {self.d_steps}, {self.bank_size}"
            )
        DiffAugment.from_policy(self.diffaugment)  # validates the policy string


# ---- modules --------------------------------------------------------------------------------------


class FiLMBatchNorm2d(nn.Module):
    """BatchNorm whose gain ``1 + A c`` and bias ``B c`` come from a continuous condition ``c``.

    Shape:
        x ``[B, C, H, W]``, c ``[B, D]`` -> ``[B, C, H, W]``.

    Example:
        >>> FiLMBatchNorm2d(8, 4)(torch.randn(2, 8, 3, 3), torch.randn(2, 4)).shape
        torch.Size([2, 8, 3, 3])
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels)
        self.bias = nn.Linear(cond_dim, channels)

    def init_with(self, g: torch.Generator) -> None:
        # start as plain BN (gain 1, bias 0); the condition's weights grow from zero
        for lin in (self.gain, self.bias):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h: Tensor = self.bn(x)
        gain: Tensor = self.gain(c)
        bias: Tensor = self.bias(c)
        return h * (1.0 + gain)[:, :, None, None] + bias[:, :, None, None]


class TextGenerator(nn.Module):
    """``(z [B, L], t [B, T]) -> [B, C, S, S]`` in [0, 1]."""

    def __init__(self, cfg: T2IConfig) -> None:
        super().__init__()
        w, s = cfg.g_width, cfg.image_size // 4
        self.base = (4 * w, s, s)
        self.text = nn.Sequential(nn.Linear(cfg.text_dim, cfg.cond_dim), nn.LeakyReLU(0.2))
        self.fc = nn.Linear(cfg.latent_dim + cfg.cond_dim, 4 * w * s * s)
        self.bn0 = FiLMBatchNorm2d(4 * w, cfg.cond_dim)
        self.conv1 = nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1)
        self.bn1 = FiLMBatchNorm2d(2 * w, cfg.cond_dim)
        self.conv2 = nn.ConvTranspose2d(2 * w, w, 4, 2, 1)
        self.bn2 = FiLMBatchNorm2d(w, cfg.cond_dim)
        self.out = nn.Conv2d(w, cfg.channels, 3, padding=1)

    def forward(self, z: Tensor, t: Tensor) -> Tensor:
        c = self.text(t)  # [B, cond]
        h = self.fc(torch.cat([z, c], 1)).view(-1, *self.base)  # [B, 4w, S/4, S/4]
        h = F.relu(self.bn0(h, c))
        h = F.relu(self.bn1(self.conv1(h), c))  # [B, 2w, S/2, S/2]
        h = F.relu(self.bn2(self.conv2(h), c))  # [B, w, S, S]
        return torch.sigmoid(self.out(h))


class TextDiscriminator(nn.Module):
    """``(x [B, C, S, S], t [B, T]) -> [B]`` logits: realism plus a text-image projection term."""

    def __init__(self, cfg: T2IConfig) -> None:
        super().__init__()
        w = cfg.d_width
        self.body = d_body(cfg.channels, w)
        self.head = sn(nn.Linear(4 * w, 1))
        self.text = nn.Sequential(
            sn(nn.Linear(cfg.text_dim, cfg.cond_dim)), nn.LeakyReLU(0.1), sn(nn.Linear(cfg.cond_dim, 4 * w))
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = self.body(x * 2.0 - 1.0).sum(dim=(2, 3))  # [B, 4w], sum pooling as in SNGAN
        out: Tensor = self.head(h).squeeze(1) + (self.text(t) * h).sum(1)
        return out


# ---- pure helpers ----------------------------------------------------------------------------------


def _uniform(rng: RNG, n: int, device: torch.device) -> Tensor:
    if isinstance(rng, torch.Generator):
        return torch.rand(n, generator=rng, device=rng.device).to(device)
    if isinstance(rng, np.random.Generator):
        return torch.from_numpy(rng.random(n, dtype=np.float32)).to(device)
    raise TypeError(f"rng must be a torch.Generator or numpy.random.Generator, got {type(rng).__name__}")


def mismatched_labels(labels: Tensor, num_classes: int, rng: RNG) -> Tensor:
    """For each label, a uniformly drawn *different* class: the class of the mismatched caption.

    Example:
        >>> y = torch.tensor([0, 1, 2])
        >>> bool((mismatched_labels(y, 3, torch.Generator().manual_seed(0)) != y).all())
        True
    """
    if num_classes < 2:
        raise ValueError("mismatched captions need at least 2 classes")
    shift = 1 + (_uniform(rng, labels.numel(), labels.device) * (num_classes - 1)).long()
    return (labels + shift.clamp(max=num_classes - 1)) % num_classes


def class_prototypes(embeddings: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Unit mean embedding per class. Shape: ``[N, D]``, ``[N]`` -> ``[num_classes, D]``."""
    sums = embeddings.new_zeros(num_classes, embeddings.shape[1]).index_add_(0, labels, embeddings)
    return F.normalize(sums, dim=1)


def _frozen(module: nn.Module, frozen: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(not frozen)
