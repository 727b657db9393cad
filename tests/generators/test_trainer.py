"""Trainer: loss goes down, resume equals an uninterrupted run, divergence stops and keeps the last good checkpoint."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from augmentgen.core import Batch
from augmentgen.generators import ConditionalGAN, ConditionalVAE, Trainer, TrainingDiverged
from augmentgen.generators.config import TrainSpec
from augmentgen.generators.trainer import StepContext, lr_factor


def spec(**kw: object) -> TrainSpec:
    base: dict[str, object] = {
        "steps": 6,
        "batch_size": 32,
        "log_every": 1,
        "sample_every": 0,
        "checkpoint_every": 0,
    }
    base.update(kw)
    return TrainSpec.model_validate(base)


def test_cvae_loss_goes_down(tmp_path: Path, digits: Batch, tiny_vae: Callable[..., ConditionalVAE]) -> None:
    t = Trainer(tiny_vae(kl_warmup_steps=0), digits, spec(steps=60, log_every=10), tmp_path)
    res = t.fit()
    recs = [r for r in t.read_metrics() if "loss" in r]
    assert res.status == "completed" and res.step == 60
    assert recs[-1]["loss"] < 0.8 * recs[0]["loss"]


def test_cgan_discriminator_loss_goes_down(
    tmp_path: Path, digits: Batch, tiny_gan: Callable[..., ConditionalGAN]
) -> None:
    t = Trainer(tiny_gan(), digits, spec(steps=30, log_every=5), tmp_path)
    t.fit()
    recs = [r for r in t.read_metrics() if "loss_d" in r]
    # hinge loss starts near 2 (D knows nothing) and falls as D learns
    assert recs[0]["loss_d"] > recs[-1]["loss_d"]
    assert all(0.0 <= r["d_real_acc"] <= 1.0 for r in recs)
    assert "grad_norm/g" in recs[-1] and "grad_norm/d" in recs[-1]


def test_outputs_written(tmp_path: Path, digits: Batch, tiny_vae: Callable[..., ConditionalVAE]) -> None:
    t = Trainer(tiny_vae(), digits, spec(steps=4, sample_every=2, checkpoint_every=2), tmp_path)
    t.fit()
    assert (tmp_path / "samples" / "step_000002.png").is_file()
    assert (tmp_path / "samples" / "final.png").is_file()
    assert (tmp_path / "loss_curves.png").is_file()
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert (tmp_path / "checkpoint" / "trainer_state.safetensors").is_file()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    loaded = ConditionalVAE.from_pretrained(tmp_path / "model")
    assert torch.equal(loaded.state_dict()["log_sigma"], t.model.state_dict()["log_sigma"])


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_resume_equals_uninterrupted(
    tmp_path: Path,
    digits: Batch,
    tiny_gan: Callable[..., ConditionalGAN],
    tiny_vae: Callable[..., ConditionalVAE],
    kind: str,
) -> None:
    make = tiny_gan if kind == "gan" else tiny_vae
    full = Trainer(make(), digits, spec(steps=6, checkpoint_every=3), tmp_path / "full")
    full.fit()
    # a run that stops at step 3 (as if killed), then a fresh process resumes it
    part = Trainer(make(), digits, spec(steps=3, checkpoint_every=3), tmp_path / "part")
    part.fit()
    resumed = Trainer(make(), digits, spec(steps=6, checkpoint_every=3), tmp_path / "part")
    resumed.fit(resume=True)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    a = [r for r in full.read_metrics()]
    b = [r for r in resumed.read_metrics()]
    strip = ("steps_per_s", "time_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in a] == [
        {k: v for k, v in r.items() if k not in strip} for r in b
    ]


def test_same_seed_same_run_other_seed_differs(
    tmp_path: Path, digits: Batch, tiny_vae: Callable[..., ConditionalVAE]
) -> None:
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        t = Trainer(tiny_vae(), digits, spec(steps=3, seed=seed), tmp_path / name)
        t.fit()
        runs.append(t.model.state_dict()["decoder.fc.weight"])
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_divergence_stops_and_keeps_last_good(
    tmp_path: Path, digits: Batch, tiny_vae: Callable[..., ConditionalVAE]
) -> None:
    def blow_up(trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        if step == 4:  # make the run diverge: poison the weights
            with torch.no_grad():
                trainer.model.decoder.out.weight.fill_(float("nan"))

    t = Trainer(tiny_vae(), digits, spec(steps=20, checkpoint_every=3), tmp_path, callbacks=[blow_up])
    with pytest.raises(TrainingDiverged, match=r"step 5.*last good checkpoint: step 3") as e:
        t.fit()
    assert e.value.step == 5
    good = ConditionalVAE.from_pretrained(tmp_path / "checkpoint")
    assert all(torch.isfinite(v).all() for v in good.state_dict().values())
    state = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert state["info"]["step"] == 3
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "diverged" and last["last_good_step"] == 3


def test_exploding_lr_is_caught(
    tmp_path: Path, digits: Batch, tiny_vae: Callable[..., ConditionalVAE]
) -> None:
    t = Trainer(tiny_vae(), digits, spec(steps=200, lr=1e6, checkpoint_every=1000), tmp_path)
    with pytest.raises(TrainingDiverged, match="no checkpoint was written"):
        t.fit()
    assert not (tmp_path / "checkpoint").exists()


def test_batch_indices_cover_each_epoch_once(digits: Batch, tiny_vae: Callable[..., ConditionalVAE]) -> None:
    t = Trainer(tiny_vae(), digits, spec(batch_size=100), "unused")
    n = digits.batch_size
    steps = math.ceil(n / 100)
    idx = torch.cat([t.batch_indices(s) for s in range(1, steps + 1)])[:n]
    assert sorted(idx.tolist()) == list(range(n))
    assert torch.equal(t.batch_indices(7), t.batch_indices(7))


def test_lr_schedule() -> None:
    s = spec(steps=110, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(5, s) == pytest.approx(0.5)
    assert lr_factor(10, s) == pytest.approx(1.0)
    assert lr_factor(60, s) == pytest.approx(0.55)
    assert lr_factor(110, s) == pytest.approx(0.1)
    assert lr_factor(50, spec(steps=100)) == 1.0


def test_per_group_lr_and_unknown_group(digits: Batch, tiny_gan: Callable[..., ConditionalGAN]) -> None:
    t = Trainer(tiny_gan(), digits, spec(lr={"g": 1e-4}), "unused")
    assert t.base_lr == {"g": 1e-4, "d": 4e-4}
    with pytest.raises(ValueError, match="unknown param groups"):
        Trainer(tiny_gan(), digits, spec(lr={"vae": 1e-4}), "unused")


def test_grad_clip_bounds_the_gradient() -> None:
    p = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([p], lr=1.0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    ctx = StepContext(1, {"x": opt}, {"x": scaler}, grad_clip=0.5)
    ctx.optimize("x", (100.0 * p).sum())
    assert ctx.grad_norms["grad_norm/x"] == pytest.approx(200.0)  # the norm before clipping is logged
    assert float(p.detach().norm()) == pytest.approx(0.5, rel=1e-5)  # the step used the clipped gradient


def test_amp_needs_cuda(
    tmp_path: Path, digits: Batch, tiny_vae: Callable[..., ConditionalVAE], caplog: pytest.LogCaptureFixture
) -> None:
    t = Trainer(tiny_vae(), digits, spec(steps=2, amp=True, device="cpu"), tmp_path)
    assert not t.amp and "amp=True needs CUDA" in caplog.text
    t.fit()
    assert t.model.decoder.fc.weight.dtype == torch.float32


def test_bfloat16_amp_falls_back_to_float32_without_native_bf16(
    tmp_path: Path, digits: Batch, tiny_vae: Callable[..., ConditionalVAE], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr("augmentgen.generators.trainer.native_bf16", lambda device: False)
    t = Trainer(tiny_vae(), digits, spec(steps=2, amp=True, amp_dtype="bfloat16", device="cpu"), tmp_path)
    assert not t.amp and "needs a device that computes bfloat16 natively" in caplog.text


def test_bfloat16_amp_trains_on_cpu(
    tmp_path: Path, digits: Batch, tiny_gan: Callable[..., ConditionalGAN], monkeypatch: pytest.MonkeyPatch
) -> None:
    # as on a CPU with AVX512-BF16 or AMX (this one may emulate it: slower, the same arithmetic)
    monkeypatch.setattr("augmentgen.generators.trainer.native_bf16", lambda device: True)
    t = Trainer(tiny_gan(), digits, spec(steps=12, amp=True, amp_dtype="bfloat16", device="cpu"), tmp_path)
    assert t.amp and t.amp_dtype == torch.bfloat16
    assert not any(s.is_enabled() for s in t.scalers.values())  # bfloat16 needs no loss scaling
    before = t.model.g.fc.weight.detach().clone()
    t.fit()
    recs = t.read_metrics()
    assert all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) for r in recs)
    assert t.model.g.fc.weight.dtype == torch.float32  # master weights stay float32
    assert not torch.equal(before, t.model.g.fc.weight)


def test_warmup_and_cosine_reach_the_optimizer(
    tmp_path: Path, digits: Batch, tiny_gan: Callable[..., ConditionalGAN]
) -> None:
    s = spec(steps=8, warmup_steps=4, schedule="cosine", min_lr_ratio=0.1, lr={"g": 1e-3, "d": 2e-3})
    t = Trainer(tiny_gan(), digits, s, tmp_path)
    t.fit()
    got = {r["step"]: (r["lr/g"], r["lr/d"]) for r in t.read_metrics()}
    for step in range(1, 9):
        f = lr_factor(step, s)
        assert got[step] == pytest.approx((1e-3 * f, 2e-3 * f)), step
    assert got[2][0] == pytest.approx(0.5e-3) and got[8][0] == pytest.approx(1e-4)


def test_grad_clip_through_the_trainer(
    tmp_path: Path, digits: Batch, tiny_vae: Callable[..., ConditionalVAE]
) -> None:
    # a clip far below the natural gradient norm: the logged norm is the unclipped one, the
    # gradient the optimizer stepped with (still in .grad after the step) is clipped
    seen: list[tuple[float, float]] = []

    def watch(trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        total = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        seen.append((metrics["grad_norm/vae"], total))

    t = Trainer(tiny_vae(), digits, spec(steps=3, grad_clip=1e-3), tmp_path, callbacks=[watch])
    t.fit()
    assert len(seen) == 3
    assert all(logged > 1e-2 for logged, _ in seen)
    assert all(used == pytest.approx(1e-3, rel=1e-3) for _, used in seen)


def test_progress_bar_shows_rate(
    tmp_path: Path, digits: Batch, tiny_vae: Callable[..., ConditionalVAE], capsys: pytest.CaptureFixture[str]
) -> None:
    Trainer(tiny_vae(), digits, spec(steps=3), tmp_path, progress=True).fit()
    out = capsys.readouterr().out
    assert "ConditionalVAE" in out and "3/3" in out and "steps/s" in out


def test_augment_applies_ops_per_step_repeatably(
    tmp_path: Path, digits: Batch, tiny_vae: Callable[..., ConditionalVAE]
) -> None:
    """``train.augment`` flips the real rows the generator sees, drawn from (seed, step)."""
    flip = [{"name": "horizontal_flip", "p": 0.5}]
    plain = Trainer(tiny_vae(), digits, spec(), tmp_path / "plain")
    aug = Trainer(tiny_vae(), digits, spec(augment=flip), tmp_path / "aug")
    for step in (1, 2):
        x, y = plain.real_batch(step).image, aug.real_batch(step).image
        assert torch.equal(aug.real_batch(step).label, plain.real_batch(step).label)
        flipped = (y == x.flip(-1)).flatten(1).all(1)
        same = (y == x).flatten(1).all(1)
        symmetric = (x == x.flip(-1)).flatten(1).all(1)
        assert bool((flipped | same).all()), "every row is itself or its mirror image"
        assert int((flipped & ~symmetric).sum()) > 0 and int((same & ~symmetric).sum()) > 0
        assert torch.equal(y, aug.real_batch(step).image), "the same step draws the same flips"
    assert not torch.equal(aug.real_batch(1).image, aug.real_batch(2).image)


def test_augment_always_flips_with_p1(
    tmp_path: Path, digits: Batch, tiny_vae: Callable[..., ConditionalVAE]
) -> None:
    t = Trainer(tiny_vae(), digits, spec(augment=[{"name": "horizontal_flip", "p": 1.0}]), tmp_path)
    plain = Trainer(tiny_vae(), digits, spec(), tmp_path / "plain")
    assert torch.equal(t.real_batch(3).image, plain.real_batch(3).image.flip(-1))


def test_augment_resume_equals_uninterrupted(
    tmp_path: Path, digits: Batch, tiny_vae: Callable[..., ConditionalVAE]
) -> None:
    aug = [{"name": "horizontal_flip", "p": 0.5}, {"name": "affine", "degrees": [-5, 5], "p": 0.5}]
    full = Trainer(tiny_vae(), digits, spec(steps=6, checkpoint_every=3, augment=aug), tmp_path / "full")
    full.fit()
    plain = Trainer(tiny_vae(), digits, spec(steps=6, checkpoint_every=3), tmp_path / "plain")
    plain.fit()
    part = Trainer(tiny_vae(), digits, spec(steps=3, checkpoint_every=3, augment=aug), tmp_path / "part")
    part.fit()
    resumed = Trainer(tiny_vae(), digits, spec(steps=6, checkpoint_every=3, augment=aug), tmp_path / "part")
    resumed.fit(resume=True)
    w = "decoder.fc.weight"
    assert torch.equal(full.model.state_dict()[w], resumed.model.state_dict()[w])
    assert not torch.equal(full.model.state_dict()[w], plain.model.state_dict()[w])


def test_augment_bad_op_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"train\.augment.*nope"):
        spec(augment=[{"name": "nope"}])
    with pytest.raises(ValueError, match=r"train\.augment"):
        spec(augment=[{"name": "horizontal_flip", "p": 2.0}])
