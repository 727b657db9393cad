"""Small building blocks shared by the generators and the reference classifier.

Modules are built on the meta device and initialised from an explicit ``torch.Generator``
(``build``), so constructing a model never reads or advances the global RNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

M = TypeVar("M", bound=nn.Module)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose gain and bias come from the class label (de Vries et al. 2017; Miyato & Koyama 2018).

    Args:
        channels: feature channels.
        num_classes: number of labels.

    Shape:
        x ``[B, C, H, W]``, y ``[B]`` int64 -> ``[B, C, H, W]``.

    Example:
        >>> bn = ConditionalBatchNorm2d(8, 10)
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)

    def init_with(self, g: torch.Generator) -> None:
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        gain: Tensor = self.gain(y)[:, :, None, None]
        bias: Tensor = self.bias(y)[:, :, None, None]
        h: Tensor = self.bn(x)
        return h * gain + bias


class SpectralNorm(nn.Module):
    """Parametrization ``W -> W / sigma(W)``, sigma by power iteration (Miyato et al. 2018).

    Unlike ``torch.nn.utils.parametrizations.spectral_norm`` it draws nothing when built: the
    power-iteration vectors start deterministic and ``reset(weight, g)`` draws them from ``g``.
    """

    _u: Tensor
    _v: Tensor

    def __init__(self, weight: Tensor, n_power_iterations: int = 1, eps: float = 1e-12) -> None:
        super().__init__()
        h, w = weight.shape[0], weight[0].numel()
        self.n_power_iterations = n_power_iterations
        self.eps = eps
        self.register_buffer("_u", weight.new_ones(h) / math.sqrt(h))
        self.register_buffer("_v", weight.new_ones(w) / math.sqrt(w))

    @torch.no_grad()
    def _power(self, mat: Tensor, n: int) -> None:
        for _ in range(n):
            # in place, so the vectors persist across calls and land in the state dict
            self._v.copy_(F.normalize(mat.t() @ self._u, dim=0, eps=self.eps))
            self._u.copy_(F.normalize(mat @ self._v, dim=0, eps=self.eps))

    @torch.no_grad()
    def reset(self, weight: Tensor, g: torch.Generator) -> None:
        """Draw the vectors from ``g`` and converge them on ``weight``."""
        mat = weight.flatten(1)
        self._u.copy_(F.normalize(torch.randn(mat.shape[0], generator=g).to(mat), dim=0, eps=self.eps))
        self._v.copy_(F.normalize(torch.randn(mat.shape[1], generator=g).to(mat), dim=0, eps=self.eps))
        self._power(mat, 15)

    def forward(self, weight: Tensor) -> Tensor:
        if weight.is_meta:  # shape check at registration on the meta device; nothing to compute
            return weight
        # float32 under autocast too: sigma in half precision is too coarse, and dot() would
        # meet a float32 u and a low-precision ``mat @ v``
        with torch.autocast(weight.device.type, enabled=False):
            w32 = weight.float()
            mat = w32.flatten(1)  # [out, in * k * k]
            if self.training:
                self._power(mat, self.n_power_iterations)
            u, v = self._u.clone(), self._v.clone()
            sigma = torch.dot(u, mat @ v)
            out: Tensor = (w32 / sigma).to(weight.dtype)
        return out


def sn(module: M, enabled: bool = True) -> M:
    """``module`` with spectral normalisation of its weight when ``enabled``."""
    if enabled:
        weight = module.weight
        if not isinstance(weight, Tensor):
            raise TypeError(f"sn: {type(module).__name__}.weight is not a tensor")
        parametrize.register_parametrization(module, "weight", SpectralNorm(weight))
    return module


def d_body(channels: int, w: int) -> nn.Sequential:
    """The spectrally normalised discriminator trunk shared by the cGAN and the text-to-image GAN.

    Shape:
        ``[B, channels, S, S]`` -> ``[B, 4w, S/4, S/4]``. Module names (``body.0`` ...) are part
        of the checkpoint format.
    """
    return nn.Sequential(
        sn(nn.Conv2d(channels, w, 3, 1, 1)),
        nn.LeakyReLU(0.1),
        sn(nn.Conv2d(w, 2 * w, 4, 2, 1)),  # S/2
        nn.LeakyReLU(0.1),
        sn(nn.Conv2d(2 * w, 2 * w, 3, 1, 1)),
        nn.LeakyReLU(0.1),
        sn(nn.Conv2d(2 * w, 4 * w, 4, 2, 1)),  # S/4
        nn.LeakyReLU(0.1),
    )


def init_weights(model: nn.Module, g: torch.Generator) -> None:
    """Initialise every parameter and buffer of ``model`` from ``g``.

    Convolutions and linear layers: Xavier-uniform weights, zero bias. Embeddings: N(0, 1/sqrt(d)).
    Norm layers: unit gain, zero bias, fresh running statistics. A module with ``init_with(g)``
    initialises itself after that.
    """
    for mod in model.modules():
        plist = getattr(mod, "parametrizations", None)
        sn_weight: Tensor | None = (
            plist["weight"].original if plist is not None and "weight" in plist else None
        )
        weight = sn_weight if sn_weight is not None else getattr(mod, "weight", None)
        with torch.no_grad():
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and isinstance(weight, Tensor):
                nn.init.xavier_uniform_(weight, generator=g)
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.Embedding) and isinstance(weight, Tensor):
                nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(mod.embedding_dim), generator=g)
            elif isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm)):
                if isinstance(weight, Tensor):
                    nn.init.ones_(weight)
                bias = getattr(mod, "bias", None)
                if isinstance(bias, Tensor):
                    nn.init.zeros_(bias)
                if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
                    mod.reset_running_stats()
        if sn_weight is not None and plist is not None:
            for par in plist["weight"]:
                if isinstance(par, SpectralNorm):
                    par.reset(sn_weight, g)
    for mod in model.modules():
        init = getattr(mod, "init_with", None)
        if callable(init):
            init(g)


def build(factory: Callable[[], M], g: torch.Generator, device: torch.device | str = "cpu") -> M:
    """Construct ``factory()`` on the meta device, initialise it on the CPU from ``g`` (a CPU generator), move it to ``device``.

    The same ``g`` state gives the same weights on every device.

    Example:
        >>> net = build(lambda: nn.Linear(3, 4), torch.Generator().manual_seed(0))
    """
    if g.device.type != "cpu":
        raise ValueError(f"build: initialisation needs a CPU torch.Generator, got one on {g.device}")
    with torch.device("meta"):
        model = factory()
    model = model.to_empty(device="cpu")
    init_weights(model, g)
    return model.to(device)


def channels_last(model: M) -> M:
    """``model`` with its 4-D weights in channels-last (NHWC) memory order, in place.

    oneDNN runs these small convolutions faster in that order: a cGAN training step takes 20%
    less CPU time (``benchmarks/generators.md``); values are unchanged.
    """
    return model.to(memory_format=torch.channels_last)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
