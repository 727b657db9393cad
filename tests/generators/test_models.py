"""ConditionalGAN and ConditionalVAE: the SampleGenerator contract, reproducibility, shapes, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from augmentgen.core import Batch, SampleGenerator
from augmentgen.generators import CGANConfig, ConditionalGAN, ConditionalVAE, CVAEConfig

Factory = Callable[..., Any]


@pytest.fixture(params=["gan", "vae"])
def model(request: pytest.FixtureRequest, tiny_gan: Factory, tiny_vae: Factory) -> Any:
    return tiny_gan() if request.param == "gan" else tiny_vae()


def test_generate_contract(model: Any) -> None:
    assert isinstance(model, SampleGenerator)
    labels = torch.tensor([0, 3, 9, 3])
    b = model.generate(labels, 4, torch.Generator().manual_seed(0))
    assert isinstance(b, Batch)
    assert b.image.shape == (4, 1, 8, 8) and b.image.dtype == torch.float32
    assert float(b.image.min()) >= 0.0 and float(b.image.max()) <= 1.0
    assert b.label is not None and b.label.tolist() == [0, 3, 9, 3]
    assert b.image.device == model.device
    assert b.meta["generator"] == [model.kind] * 4


def test_same_rng_same_images_other_rng_differs(model: Any) -> None:
    a = model.generate([1, 2, 3], 3, torch.Generator().manual_seed(5)).image
    b = model.generate([1, 2, 3], 3, torch.Generator().manual_seed(5)).image
    c = model.generate([1, 2, 3], 3, torch.Generator().manual_seed(6)).image
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = model.generate([1, 2, 3], 3, np.random.default_rng(5)).image
    e = model.generate([1, 2, 3], 3, np.random.default_rng(5)).image
    assert torch.equal(d, e)


def test_row_does_not_depend_on_batch_or_chunk(model: Any) -> None:
    big = model.generate(torch.arange(10), 10, torch.Generator().manual_seed(1), chunk=3).image
    whole = model.generate(torch.arange(10), 10, torch.Generator().manual_seed(1)).image
    assert torch.allclose(big, whole, atol=1e-6)


def test_generate_leaves_global_rng_alone(model: Any) -> None:
    before = torch.random.get_rng_state()
    model.generate([0, 1], 2, torch.Generator().manual_seed(0))
    assert torch.equal(before, torch.random.get_rng_state())


def test_condition_broadcast_and_errors(model: Any) -> None:
    g = torch.Generator().manual_seed(0)
    assert model.generate([7], 3, g).label.tolist() == [7, 7, 7]
    assert model.generate(torch.tensor([2, 2]), 2, g).label.tolist() == [2, 2]
    with pytest.raises(ValueError, match="condition has 2 labels but n=3"):
        model.generate([1, 2], 3, g)
    with pytest.raises(ValueError, match=r"must be in \[0, 10\)"):
        model.generate([10], 1, g)
    with pytest.raises(TypeError, match="not prompts"):
        model.generate(["a red dress"], 1, g)
    with pytest.raises(TypeError, match="rng must be"):
        model.generate([1], 1, 123)
    assert model.generate([], 0, g).image.shape[0] == 0


def test_temperature_zero_collapses_latents(model: Any) -> None:
    b = model.generate([4, 4, 4], 3, torch.Generator().manual_seed(0), temperature=0.0).image
    assert torch.allclose(b[0], b[1]) and torch.allclose(b[1], b[2])


def test_construction_leaves_global_rng_alone_and_is_seeded() -> None:
    before = torch.random.get_rng_state()
    a = ConditionalGAN(CGANConfig(image_size=8, g_width=4, d_width=4), rng=torch.Generator().manual_seed(1))
    b = ConditionalGAN(CGANConfig(image_size=8, g_width=4, d_width=4), rng=torch.Generator().manual_seed(1))
    c = ConditionalGAN(CGANConfig(image_size=8, g_width=4, d_width=4), rng=torch.Generator().manual_seed(2))
    assert torch.equal(before, torch.random.get_rng_state())
    assert torch.equal(a.g.fc.weight, b.g.fc.weight) and not torch.equal(a.g.fc.weight, c.g.fc.weight)


def test_discriminator_is_spectrally_normalised(tiny_gan: Factory) -> None:
    gan = tiny_gan()
    for mod in gan.d.body:
        if isinstance(mod, torch.nn.Conv2d):
            sigma = torch.linalg.matrix_norm(mod.weight.detach().flatten(1), ord=2)
            assert float(sigma) == pytest.approx(1.0, rel=0.05)


def test_cvae_reconstruct(digits: Batch, tiny_vae: Factory) -> None:
    vae = tiny_vae()
    rec = vae.reconstruct(digits.index(torch.arange(5)))
    assert (
        rec.image.shape == (5, 1, 8, 8)
        and rec.label is not None
        and rec.label.tolist() == digits.label[:5].tolist()
    )
    r1 = vae.reconstruct(digits.index(torch.arange(5)), torch.Generator().manual_seed(0))
    assert not torch.equal(r1.image, rec.image)
    with pytest.raises(ValueError, match="needs labels"):
        vae.reconstruct(Batch(torch.rand(1, 1, 8, 8)))


def test_cvae_kl_warmup() -> None:
    vae = ConditionalVAE(CVAEConfig(image_size=8, width=4, beta=2.0, kl_warmup_steps=10))
    assert [vae.kl_weight(s) for s in (1, 5, 10, 50)] == [0.2, 1.0, 2.0, 2.0]


def test_gaussian_likelihood_trains_sigma(digits: Batch, tiny_vae: Factory, tmp_path: Any) -> None:
    from augmentgen.generators import Trainer
    from augmentgen.generators.config import TrainSpec

    vae = tiny_vae(likelihood="gaussian")
    spec = TrainSpec(steps=30, batch_size=64, log_every=10, sample_every=0, checkpoint_every=0)
    t = Trainer(vae, digits, spec, tmp_path)
    t.fit()
    assert float(vae.log_sigma.detach()) < 0.0  # sigma shrinks below 1 as the decoder fits
    recs = t.read_metrics()
    assert recs[-1]["loss"] < recs[0]["loss"]


@pytest.mark.parametrize(
    ("cls", "kw", "match"),
    [
        (CGANConfig, {"image_size": 30}, "multiple of 4"),
        (CGANConfig, {"loss": "wgan"}, "hinge"),
        (CGANConfig, {"diffaugment": "color,rotate"}, "unknown policy"),
        (CGANConfig, {"ema_decay": 1.0}, "ema_decay"),
        (CVAEConfig, {"likelihood": "laplace"}, "bernoulli"),
        (CVAEConfig, {"latent_dim": 0}, "latent_dim"),
    ],
)
def test_bad_configs(cls: type, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(**kw)


def test_cvae_class_prior_is_fitted_and_saved(digits: Batch, tiny_vae: Factory, tmp_path: Any) -> None:
    from augmentgen.generators import Trainer
    from augmentgen.generators.config import TrainSpec

    vae = tiny_vae()
    spec = TrainSpec(steps=20, batch_size=64, log_every=10, sample_every=0, checkpoint_every=0)
    Trainer(vae, digits, spec, tmp_path).fit()
    assert bool(vae.prior_fitted)
    assert digits.label is not None
    mu, _ = vae.encoder(digits.image[digits.label == 3], digits.label[digits.label == 3])
    # the mixture's mean (weights times component means) is the mean of the class's posterior means
    mix_mean = (vae.prior_weight[3][:, None] * vae.prior_mean[3]).sum(0)
    assert torch.allclose(mix_mean, mu.mean(0), atol=1e-4)
    assert torch.allclose(vae.prior_weight.sum(1), torch.ones(10, dtype=vae.prior_weight.dtype))
    loaded = ConditionalVAE.from_pretrained(tmp_path / "model")
    assert bool(loaded.prior_fitted)
    a = vae.generate([3, 3], 2, torch.Generator().manual_seed(0)).image
    assert torch.equal(a, loaded.generate([3, 3], 2, torch.Generator().manual_seed(0)).image)
    std = tiny_vae(prior="standard")
    std.load_state_dict(vae.state_dict())
    assert not torch.equal(a, std.generate([3, 3], 2, torch.Generator().manual_seed(0)).image)


def test_spectral_norm_stays_float32_under_autocast(tiny_gan: Factory) -> None:
    # sigma and the logits are computed in float32 even inside a bfloat16 autocast region,
    # so mixed-precision training divides by the same sigma as float32 training
    gan = tiny_gan().eval()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6) % 10
    ref = gan.d(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conv = gan.d.body[0]
        assert conv.weight.dtype == torch.float32
        out = gan.d(x, y)
    assert out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=0.05 * float(ref.detach().abs().max()) + 1e-3)


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_channels_last_weights_give_the_same_images(kind: str, tiny_gan: Factory, tiny_vae: Factory) -> None:
    a = tiny_gan() if kind == "gan" else tiny_vae()
    b = tiny_gan() if kind == "gan" else tiny_vae()
    b.to(memory_format=torch.contiguous_format)
    convs = [m for m in a.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    # the stored weight (the spectral-norm original where there is one) is in NHWC order
    stored = [
        m.parametrizations["weight"].original if hasattr(m, "parametrizations") else m.weight for m in convs
    ]
    assert stored and all(
        w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
        for w in stored
        if w.shape[1] > 1  # one input channel: both orders are the same layout
    )
    ia = a.generate(list(range(10)), 10, torch.Generator().manual_seed(3)).image
    ib = b.generate(list(range(10)), 10, torch.Generator().manual_seed(3)).image
    assert ia.is_contiguous()  # callers get plain NCHW tensors
    assert torch.allclose(ia, ib, atol=1e-5)


def test_ema_update_golden() -> None:
    from augmentgen.generators.common import ema_update

    live, ema = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        live.weight.copy_(torch.tensor([3.0, -1.0]))
        ema.weight.copy_(torch.tensor([1.0, 1.0]))
        live.running_mean.copy_(torch.tensor([5.0, 6.0]))
    ema_update(ema, live, 0.75)
    assert ema.weight.tolist() == [1.5, 0.5]  # 0.75 * 1 + 0.25 * live
    assert ema.bias.tolist() == [0.0, 0.0]
    assert ema.running_mean.tolist() == [5.0, 6.0]  # buffers are copied, not averaged
    with pytest.raises(ValueError, match="EMA copy has 2 parameters"):
        ema_update(ema, torch.nn.Linear(2, 2, bias=False), 0.5)
