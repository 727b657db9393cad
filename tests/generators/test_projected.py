"""Frozen EfficientNet-Lite0 taps: the projected discriminator and the CVAE's perceptual term; checkpoints without the trunk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from augmentgen.core import Batch
from augmentgen.generators import CGANConfig, ConditionalGAN, ConditionalVAE, CVAEConfig
from augmentgen.generators.projected import FrozenTaps, ProjectedDiscriminator, TargetCache, feature_distance

from .conftest import make_tiny_gan, make_tiny_vae


class _Ctx:
    """The part of the trainer's step context a training step uses: one Adam per part."""

    def __init__(self, model: ConditionalGAN | ConditionalVAE) -> None:
        self.step = 0
        self.opt = {
            k: torch.optim.Adam(v, lr=1e-3, betas=(0.0, 0.99)) for k, v in model.param_groups().items()
        }

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        self.opt[name].zero_grad(set_to_none=True)
        loss.backward()
        self.opt[name].step()


def _gan(**kw: Any) -> ConditionalGAN:
    return make_tiny_gan(image_size=12, discriminator="effnet_lite0", d_feature_size=32, **kw)


def test_taps_have_the_documented_shapes_and_the_trunk_is_frozen() -> None:
    d = ProjectedDiscriminator(3, feature_size=64, width=8)
    taps = d.features(torch.rand(2, 1, 28, 28))
    assert [tuple(t.shape) for t in taps] == [(2, 16, 32, 32), (2, 24, 16, 16), (2, 40, 8, 8), (2, 112, 4, 4)]
    trunk = d.taps.trunk(torch.device("cpu"))
    assert not trunk.training and all(not p.requires_grad for p in trunk.parameters())
    assert d(torch.rand(2, 1, 28, 28), torch.tensor([0, 2])).shape == (2,)


def test_the_trunk_stays_out_of_the_state_dict() -> None:
    gan = _gan()
    gan.d(torch.rand(2, 1, 12, 12), torch.tensor([0, 1]))  # loads the trunk
    keys = list(gan.state_dict())
    assert any(k.startswith("d.heads.3.") for k in keys)
    assert not any("_blocks" in k or "_conv_stem" in k for k in keys)
    assert sum(p.numel() for p in gan.d.parameters()) < 50_000  # heads only, not Lite0's 3.4M


def test_training_moves_heads_and_generator_not_the_trunk(digits: Batch) -> None:
    gan = _gan()
    real = Batch(
        torch.nn.functional.interpolate(digits.image[:16].float(), size=(12, 12)), label=digits.label[:16]
    )
    trunk_before = {k: v.clone() for k, v in gan.d.taps.trunk(torch.device("cpu")).state_dict().items()}
    head_before = gan.d.heads[1].out.parametrizations.weight.original.clone()
    g_before = gan.g.out.weight.clone()
    ctx, rng = _Ctx(gan), torch.Generator().manual_seed(0)
    for step in range(3):
        ctx.step = step
        stats = gan.training_step(real, rng, ctx)
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    after = gan.d.taps.trunk(torch.device("cpu")).state_dict()
    assert all(torch.equal(trunk_before[k], after[k]) for k in trunk_before)  # BN statistics too
    assert not torch.equal(head_before, gan.d.heads[1].out.parametrizations.weight.original)
    assert not torch.equal(g_before, gan.g.out.weight)  # the G step's gradient went through the trunk


def test_checkpoint_round_trip_keeps_config_heads_and_images(tmp_path: Path) -> None:
    gan = _gan()
    gan.save_pretrained(tmp_path / "m")
    back = ConditionalGAN.from_pretrained(tmp_path / "m")
    assert back.config.discriminator == "effnet_lite0" and back.config.d_feature_size == 32
    assert not back.d.taps.loaded  # sampling a loaded generator never loads the feature network
    for k, v in gan.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    a = gan.generate([0, 1], 2, torch.Generator().manual_seed(3)).image
    b = back.generate([0, 1], 2, torch.Generator().manual_seed(3)).image
    assert torch.equal(a, b)


def test_projection_buffers_are_seeded() -> None:
    a, b = _gan(), _gan()
    assert torch.equal(a.d.heads[0].proj, b.d.heads[0].proj)
    assert a.d.heads[0].proj.abs().max() > 0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"discriminator": "resnet"}, "discriminator must be one of"),
        ({"discriminator": "effnet_lite0", "d_feature_size": 48}, "multiple of 32"),
    ],
)
def test_bad_projected_configs(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CGANConfig(**kw)


def test_feature_distance_is_zero_on_itself_bounded_and_grows_with_change() -> None:
    taps = FrozenTaps(32)
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(feature_distance(taps, x, x), torch.zeros(3), atol=1e-6)
    near = feature_distance(taps, (x + 0.05).clamp(0, 1), x)
    far = feature_distance(taps, 1 - x, x)
    assert (near > 0).all() and (far > near).all() and (far <= 4).all()


def test_cvae_perceptual_term_trains_without_saving_the_trunk(digits: Batch, tmp_path: Path) -> None:
    vae = make_tiny_vae(image_size=8, perceptual=1.0)
    real = Batch(digits.image[:16].float(), label=digits.label[:16])
    ctx = _Ctx(vae)
    ctx.step = 1
    stats = vae.training_step(real, torch.Generator().manual_seed(0), ctx)
    assert 0 < stats["perceptual"] <= 4 and stats["loss"] > stats["rec"]
    assert vae._taps.loaded and not any("_blocks" in k for k in vae.state_dict())
    vae.save_pretrained(tmp_path / "v")
    assert ConditionalVAE.from_pretrained(tmp_path / "v").config.perceptual == 1.0
    other = make_tiny_vae(image_size=8)
    plain = other.training_step(real, torch.Generator().manual_seed(0), _Ctx(other))
    assert "perceptual" not in plain


def test_cached_targets_train_the_same_weights_and_compute_each_image_once(digits: Batch) -> None:
    """The targets of a batch come from the cache only when every image of it is there, computed
    in a batch of the same size: the trained weights are bit for bit those without a cache."""
    real = Batch(digits.image[:24].float(), label=digits.label[:24])
    drawn: set[bytes] = set()

    def train(cache: TargetCache | None) -> ConditionalVAE:
        vae = make_tiny_vae(image_size=8, perceptual=1.0)
        if cache is None:
            vae._targets = lambda taps, b: None  # type: ignore[assignment,method-assign]  # computed every step
        else:
            vae._targets = cache
        ctx, g = _Ctx(vae), torch.Generator().manual_seed(0)
        for step in range(1, 13):
            ctx.step = step
            pick = torch.randperm(24, generator=g)[:8]  # other neighbours in every batch
            drawn.update(real.image[int(i)].numpy().tobytes() for i in pick)
            vae.training_step(real.index(pick), g, ctx)
        return vae

    cache = TargetCache()
    plain, cached = train(None), train(cache)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), cached.state_dict().values(), strict=True))
    assert {k[1] for k in cache.rows} == drawn and all(k[0] == 8 for k in cache.rows)  # each image once, at batch size 8
    full = TargetCache(max_bytes=cache.bytes // 2)
    train(full)
    assert 0 < full.bytes <= cache.bytes // 2 and len(full.rows) < len(drawn)  # the cap holds


@pytest.mark.parametrize("kw", [{"perceptual": -1.0}, {"perceptual_size": 40}])
def test_bad_perceptual_configs(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="perceptual"):
        CVAEConfig(**kw)
