"""Helpers every label-conditioned generator shares: condition parsing, latent draws, EMA."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from augmentgen.core.rng import RNG


def condition_labels(
    condition: Tensor | list[Any] | int, n: int, num_classes: int, device: torch.device
) -> Tensor:
    """``condition`` as ``[n]`` int64 labels on ``device``; one label is repeated ``n`` times.

    Example:
        >>> condition_labels([3], 2, 10, torch.device("cpu")).tolist()
        [3, 3]
    """
    if isinstance(condition, int):
        condition = [condition]
    if isinstance(condition, list) and any(isinstance(c, str) for c in condition):
        raise TypeError("this generator is conditioned on class ids, not prompts; got strings in condition")
    try:
        labels = torch.as_tensor(condition, dtype=torch.int64).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"condition must be class ids (tensor or list of ints), got {condition!r}") from e
    if labels.numel() == 1 and n != 1:
        labels = labels.repeat(n)
    if labels.numel() != n:
        raise ValueError(f"condition has {labels.numel()} labels but n={n}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"condition labels must be in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]"
        )
    return labels.to(device)


def draw_latents(rng: RNG, n: int, dim: int, device: torch.device) -> Tensor:
    """``[n, dim]`` standard normal latents from ``rng`` (torch or numpy), moved to ``device``.

    Drawing on the generator's own device and then moving keeps samples identical across devices
    for a CPU generator.
    """
    if isinstance(rng, torch.Generator):
        z = torch.randn((n, dim), generator=rng, device=rng.device)
    elif isinstance(rng, np.random.Generator):
        z = torch.from_numpy(rng.standard_normal((n, dim), dtype=np.float32))
    else:
        raise TypeError(f"rng must be a torch.Generator or numpy.random.Generator, got {type(rng).__name__}")
    return z.to(device)


@torch.no_grad()
def ema_update(ema: nn.Module, live: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * live`` for parameters; buffers (BN statistics) are copied.

    One fused ``_foreach`` call per kind instead of a Python loop over tensors.
    """
    pe: list[Tensor] = list(ema.parameters())
    pl = [p.detach() for p in live.parameters()]
    be, bl = list(ema.buffers()), list(live.buffers())
    if len(pe) != len(pl) or len(be) != len(bl):
        raise ValueError(
            f"ema_update: EMA copy has {len(pe)} parameters / {len(be)} buffers, the live model {len(pl)} / {len(bl)}"
        )
    if pe:
        torch._foreach_lerp_(pe, pl, 1.0 - decay)
    if be:
        torch._foreach_copy_(be, bl)


def warmup_decay(decay: float, step: int) -> float:
    """EMA decay ramped in over the first steps, when the average would be dominated by the random init."""
    return min(decay, (1.0 + step) / (10.0 + step))


def d_stats(
    loss_d: Tensor, loss_g: Tensor, d_real: Tensor, d_fake: Tensor, **negatives: Tensor
) -> dict[str, float]:
    """The GAN step's log row: losses, mean logits, the discriminator's accuracy on each kind of row.

    ``negatives`` are extra rows D should call fake (e.g. ``mismatch`` for real images with
    other captions); each adds ``d_<name>`` and ``d_<name>_acc``.
    """
    d_real, d_fake = d_real.detach(), d_fake.detach()
    out = {
        "loss_d": float(loss_d.detach()),
        "loss_g": float(loss_g.detach()),
        "d_real": float(d_real.mean()),
        "d_fake": float(d_fake.mean()),
    }
    for name, v in negatives.items():
        out[f"d_{name}"] = float(v.detach().mean())
    out["d_real_acc"] = float((d_real > 0).float().mean())
    out["d_fake_acc"] = float((d_fake < 0).float().mean())
    for name, v in negatives.items():
        out[f"d_{name}_acc"] = float((v.detach() < 0).float().mean())
    out["d_real_sign"] = float(torch.sign(d_real).mean())
    return out
