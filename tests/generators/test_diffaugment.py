"""DiffAugment on the project ops: differentiable, seeded, per-row params, paired mode, identity policy."""

from __future__ import annotations

import pytest
import torch

from augmentgen.generators import DiffAugment


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_empty_policy_is_identity() -> None:
    x = torch.rand(3, 1, 8, 8)
    assert DiffAugment.from_policy("")(x, g()) is x
    assert not DiffAugment.from_policy(" ").enabled


def test_unknown_policy() -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        DiffAugment.from_policy("color,flip")


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_differentiable_and_seeded(policy: str) -> None:
    aug = DiffAugment.from_policy(policy)
    x = torch.rand(6, 1, 16, 16, requires_grad=True)
    y = aug(x, g(1))
    assert y.shape == x.shape
    assert float(y.detach().min()) >= 0.0 and float(y.detach().max()) <= 1.0
    (y * torch.linspace(0, 1, y.numel()).reshape(y.shape)).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert torch.equal(aug(x, g(1)), y)
    assert not torch.equal(aug(x, g(2)), y)


def test_rows_get_their_own_params() -> None:
    x = torch.rand(1, 1, 16, 16).repeat(8, 1, 1, 1)
    y = DiffAugment.from_policy("translation,cutout")(x, g(0))
    assert len({tuple(r.flatten().tolist()) for r in y}) > 1


def test_translation_moves_pixels_by_whole_steps() -> None:
    x = torch.zeros(16, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    y = DiffAugment.from_policy("translation")(x, g(0))
    # nearest sampling: the bright pixel moves, it is not smeared over neighbours
    assert torch.all((y == 0) | (y == 1))
    assert torch.all(y.flatten(1).sum(1) == 1)
    shift = (y[:, 0].flatten(1).argmax(1) - (8 * 16 + 8)).abs()
    assert int(shift.max()) > 0


def test_cutout_zeroes_a_quarter() -> None:
    x = torch.ones(4, 1, 16, 16)
    y = DiffAugment.from_policy("cutout")(x, g(0))
    frac = (y == 0).float().flatten(1).mean(1)
    assert torch.all(frac > 0.05) and torch.all(frac <= 0.25 + 1e-6)


def test_pair_uses_the_same_params_for_real_and_fake() -> None:
    aug = DiffAugment.from_policy("color,translation,cutout")
    x = torch.rand(5, 1, 16, 16)
    r, f = aug.pair(x, x.clone(), g(3))
    assert torch.allclose(r, f, atol=1e-6)  # same params; batched float math may differ in the last bit
    other, _ = aug.pair(x, x.clone(), g(4))
    assert not torch.allclose(r, other, atol=1e-3)
    with pytest.raises(ValueError, match="differ"):
        aug.pair(x, x[:2], g(0))
