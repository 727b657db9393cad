"""TextToImageGAN: matching-aware negatives, caption bank, prompts -> labels, training, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from augmentgen.core import Batch, SampleGenerator
from augmentgen.core.registry import GENERATORS
from augmentgen.generators import T2IConfig, TextToImageGAN, Trainer, load_generator
from augmentgen.generators.config import TrainSpec
from augmentgen.generators.prompts import TemplatePrompts
from augmentgen.generators.t2i import class_prototypes, mismatched_labels

TEXT_DIM = 16


def tiny_config(**kw: object) -> T2IConfig:
    cfg: dict[str, object] = {
        "image_size": 8, "g_width": 8, "d_width": 8, "latent_dim": 8, "cond_dim": 8, "text_dim": TEXT_DIM,
    }  # fmt: skip
    cfg.update(kw)
    return T2IConfig(**cfg)  # type: ignore[arg-type]


def clustered_captions(
    num_classes: int = 10, per_class: int = 4, seed: int = 0
) -> tuple[list[str], Tensor, Tensor]:
    """Captions whose embeddings cluster per class (a random centre per class plus small noise)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, TEXT_DIM, generator=g)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    emb = centres[labels] + 0.1 * torch.randn(labels.numel(), TEXT_DIM, generator=g)
    texts = [f"caption {i} of class {int(y)}" for i, y in enumerate(labels)]
    return texts, labels, emb


Tensor = torch.Tensor


@pytest.fixture
def tiny() -> TextToImageGAN:
    m = TextToImageGAN(tiny_config())
    m.set_captions(*clustered_captions())
    return m


# ---- matching-aware negatives --------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    st.integers(2, 12).flatmap(
        lambda c: st.tuples(st.just(c), st.lists(st.integers(0, c - 1), min_size=1, max_size=40))
    ),
    st.integers(0, 2**31 - 1),
)
def test_mismatched_labels_are_another_class(case: tuple[int, list[int]], seed: int) -> None:
    c, labels = case
    y = torch.tensor(labels)
    m = mismatched_labels(y, c, torch.Generator().manual_seed(seed))
    assert m.shape == y.shape and m.dtype == torch.int64
    assert bool((m != y).all()) and int(m.min()) >= 0 and int(m.max()) < c


def test_mismatched_labels_cover_every_other_class_evenly() -> None:
    y = torch.zeros(9000, dtype=torch.int64)
    m = mismatched_labels(y, 4, np.random.default_rng(0))
    counts = torch.bincount(m, minlength=4)
    assert counts[0] == 0
    assert torch.allclose(counts[1:].float() / 9000, torch.full((3,), 1 / 3), atol=0.02)
    with pytest.raises(ValueError, match="at least 2 classes"):
        mismatched_labels(y, 1, np.random.default_rng(0))


def test_discriminator_negatives_pair_real_images_with_other_class_captions(tiny: TextToImageGAN) -> None:
    y = torch.arange(10).repeat(20)
    match, mis = tiny.discriminator_negatives(y, torch.Generator().manual_seed(3))
    assert torch.equal(tiny.bank_label[match], y)
    assert bool((tiny.bank_label[mis] != y).all())
    # every caption of a class is reachable: 200 draws over 4 captions per class hit all 40 rows
    assert set(match.tolist()) == set(range(40))


def test_mismatch_term_enters_the_discriminator_loss(tiny: TextToImageGAN) -> None:
    real, fake, mis = torch.zeros(4), torch.zeros(4), torch.full((4,), 3.0)
    with_mis = float(tiny._d_terms(real, fake, mis))
    tiny.config.mismatch_weight = 0.0
    assert float(tiny._d_terms(real, fake, mis)) == pytest.approx(2.0)  # hinge: 1 + 1
    assert with_mis == pytest.approx(1.0 + 0.5 * 1.0 + 0.5 * 4.0)


# ---- caption bank and generate -----------------------------------------------------------------------


def test_set_captions_sorts_by_class_and_builds_prototypes() -> None:
    texts, labels, emb = clustered_captions(3, 2)
    perm = torch.tensor([5, 0, 3, 1, 4, 2])
    m = TextToImageGAN(tiny_config(num_classes=3))
    m.set_captions([texts[i] for i in perm], labels[perm], emb[perm])
    assert m.bank_label.tolist() == [0, 0, 1, 1, 2, 2]
    assert m.config.bank_size == 6
    for row, text in enumerate(m.bank_texts):
        assert text.endswith(f"class {int(m.bank_label[row])}")
    assert torch.allclose(m.bank_emb.norm(dim=1), torch.ones(6))
    proto = class_prototypes(m.bank_emb, m.bank_label, 3)
    assert torch.equal(m.class_text, proto) and torch.equal(m.classify_text(m.bank_emb), m.bank_label)


def test_set_captions_errors_name_the_problem() -> None:
    texts, labels, emb = clustered_captions(3, 2)
    m = TextToImageGAN(tiny_config(num_classes=3))
    with pytest.raises(ValueError, match=r"classes \[2\] have no caption"):
        m.set_captions(texts[:4], labels[:4], emb[:4])
    with pytest.raises(ValueError, match="embeddings"):
        m.set_captions(texts, labels, emb[:, :5])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        m.set_captions(texts, labels + 1, emb)
    with pytest.raises(ValueError, match="no caption bank"):
        m.generate([0], 1, torch.Generator().manual_seed(0))


def test_generate_on_labels_renders_a_caption_of_the_label(tiny: TextToImageGAN) -> None:
    assert isinstance(tiny, SampleGenerator)
    b = tiny.generate(torch.tensor([0, 3, 9, 3]), 4, torch.Generator().manual_seed(0))
    assert isinstance(b, Batch) and b.image.shape == (4, 1, 8, 8)
    assert float(b.image.min()) >= 0 and float(b.image.max()) <= 1
    assert b.label is not None and b.label.tolist() == [0, 3, 9, 3]
    assert [p.endswith(f"class {y}") for p, y in zip(b.meta["prompt"], [0, 3, 9, 3], strict=True)] == [
        True
    ] * 4
    assert b.meta["generator"] == ["t2i"] * 4


def test_same_rng_same_images_and_global_rng_untouched(tiny: TextToImageGAN) -> None:
    before = torch.random.get_rng_state()
    a = tiny.generate([1, 2, 3], 3, torch.Generator().manual_seed(5))
    b = tiny.generate([1, 2, 3], 3, torch.Generator().manual_seed(5))
    c = tiny.generate([1, 2, 3], 3, torch.Generator().manual_seed(6))
    assert torch.equal(a.image, b.image) and a.meta["prompt"] == b.meta["prompt"]
    assert not torch.equal(a.image, c.image)
    d = tiny.generate([1, 2, 3], 3, np.random.default_rng(5)).image
    assert torch.equal(d, tiny.generate([1, 2, 3], 3, np.random.default_rng(5)).image)
    assert torch.equal(before, torch.random.get_rng_state())


class FixedEncoder:
    """A stand-in encoder that maps known texts to fixed vectors (the real MiniLM is tested below)."""

    name, dim = "fixed", TEXT_DIM

    def __init__(self, table: dict[str, Tensor]) -> None:
        self.table = table
        self.calls = 0

    def encode(self, texts: list[str]) -> Tensor:
        self.calls += 1
        return torch.stack([self.table[t] for t in texts])


def test_generate_on_prompts_labels_by_pair_keyword_or_nearest_class() -> None:
    texts, labels, emb = clustered_captions()
    m = TextToImageGAN(tiny_config(), encoder=FixedEncoder(dict(zip(texts, emb, strict=True))))
    m.set_captions(texts, labels, emb)
    g = torch.Generator().manual_seed(0)
    # nearest class prototype
    b = m.generate([texts[0], texts[13], texts[39]], 3, g)
    assert (
        b.label is not None
        and b.label.tolist() == [0, 3, 9]
        and b.meta["prompt"] == [texts[0], texts[13], texts[39]]
    )
    # explicit labels win over the prototype
    assert m.generate([texts[0], texts[1]], 2, g, labels=[5, 6]).label.tolist() == [5, 6]
    assert m.generate([(7, texts[0]), (8, texts[1])], 2, g).label.tolist() == [7, 8]
    assert m.generate(texts[5], 3, g).label.tolist() == [1, 1, 1]  # one prompt, n images
    with pytest.raises(ValueError, match="2 prompts but n=3"):
        m.generate([texts[0], texts[1]], 3, g)
    with pytest.raises(TypeError, match=r"condition\[1\]"):
        m.generate([texts[0], 3.5], 2, g)


def test_prompt_and_its_embedding_give_the_same_image() -> None:
    texts, labels, emb = clustered_captions()
    m = TextToImageGAN(tiny_config(text_noise=0.0), encoder=FixedEncoder(dict(zip(texts, emb, strict=True))))
    m.set_captions(texts, labels, emb)
    # label path draws z first, then the caption: with a one-caption class the two paths meet
    one = TextToImageGAN(tiny_config(num_classes=1), encoder=m.encoder)
    one.set_captions([texts[0]], [0], emb[:1])
    a = one.generate([0, 0], 2, torch.Generator().manual_seed(1)).image
    b = one.generate([texts[0], texts[0]], 2, torch.Generator().manual_seed(1)).image
    assert torch.allclose(a, b, atol=1e-6)


# ---- training and files ---------------------------------------------------------------------------------


def test_a_few_steps_reduce_the_discriminator_loss(tmp_path: Path, digits: Batch) -> None:
    m = TextToImageGAN(tiny_config(g_width=16, d_width=16))
    m.set_captions(*clustered_captions())
    spec = TrainSpec(steps=120, batch_size=32, log_every=20, sample_every=0, checkpoint_every=0, device="cpu")
    before = m.generate(torch.arange(10), 10, torch.Generator().manual_seed(0)).image
    res = Trainer(m, digits, spec, tmp_path / "run").fit()
    rec = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert res.step == 120 and len(rec) == 6
    assert rec[-1]["loss_d"] < rec[0]["loss_d"] - 0.2  # hinge loss starts near 2 (D knows nothing)
    assert all(np.isfinite(r["loss_g"]) for r in rec)
    after = m.generate(torch.arange(10), 10, torch.Generator().manual_seed(0)).image
    assert float((after - before).abs().mean()) > 0.01
    assert (tmp_path / "run" / "samples" / "final.png").is_file()


def test_save_load_round_trip_gives_identical_samples(tmp_path: Path, tiny: TextToImageGAN) -> None:
    with torch.no_grad():  # move the EMA away from the live generator so the test sees which one is saved
        for p in tiny.g_ema.parameters():
            p.add_(0.01)
    tiny.save_pretrained(tmp_path / "m", meta={"step": 3})
    body = json.loads((tmp_path / "m" / "config.json").read_text())
    assert body["kind"] == "t2i" and body["config"]["bank_size"] == 40 and len(body["meta"]["captions"]) == 40
    back = load_generator(tmp_path / "m")
    assert isinstance(back, TextToImageGAN) and GENERATORS.get("t2i") is TextToImageGAN
    assert back.bank_texts == tiny.bank_texts and torch.equal(back.bank_label, tiny.bank_label)
    a = tiny.eval().generate(torch.arange(10), 10, torch.Generator().manual_seed(4))
    b = back.generate(torch.arange(10), 10, torch.Generator().manual_seed(4))
    assert torch.equal(a.image, b.image) and a.meta["prompt"] == b.meta["prompt"]
    with pytest.raises(TypeError, match="unexpected arguments"):
        TextToImageGAN.from_pretrained(tmp_path / "m", temperature=1)


def test_from_pretrained_rejects_a_tampered_caption_list(tmp_path: Path, tiny: TextToImageGAN) -> None:
    tiny.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    body = json.loads(path.read_text())
    body["meta"]["captions"] = body["meta"]["captions"][:-1]
    path.write_text(json.dumps(body))
    with pytest.raises(ValueError, match="meta.captions must list 40"):
        TextToImageGAN.from_pretrained(tmp_path / "m")


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="mismatch_weight"):
        T2IConfig(mismatch_weight=1.5)
    with pytest.raises(ValueError, match="image_size"):
        T2IConfig(image_size=30)
    with pytest.raises(ValueError, match=r"generators\[t2i\].model: unknown key"):
        TextToImageGAN.from_config({"widht": 3}, where="generators[t2i].model")


# ---- the real MiniLM encoder -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> object:
    from augmentgen.generators.text_encoders import load_text_encoder

    return load_text_encoder("minilm")


def test_held_out_prompts_take_the_class_of_their_text_with_minilm(minilm: object, tmp_path: Path) -> None:
    tp = TemplatePrompts.fashion_mnist()
    texts = [p for c in range(10) for p in tp.prompts(c, 20, seed=0)]
    labels = torch.arange(10).repeat_interleave(20)
    m = TextToImageGAN(tiny_config(text_dim=384))
    m.set_captions(texts, labels, minilm.encode(texts))  # type: ignore[attr-defined]
    m.save_pretrained(tmp_path / "m")
    back = TextToImageGAN.from_pretrained(tmp_path / "m")  # loads MiniLM itself from config.text_encoder
    held_out = ["a pair of blue jeans", "running shoes", "a woman's leather handbag", "a winter parka"]
    b = back.generate(held_out, 4, torch.Generator().manual_seed(0))
    assert b.label is not None and b.label.tolist() == [1, 7, 8, 4]
    assert b.image.shape == (4, 1, 8, 8)


# ---- caption banks and the recipe's text_to_image section -------------------------------------------------


def test_caption_bank_round_trip_and_from_config(tmp_path: Path) -> None:
    from augmentgen.generators.t2i_captions import caption_rows, read_caption_bank, write_caption_bank

    texts, labels, emb = clustered_captions(10, 2)
    table = dict(zip(texts, emb, strict=True))
    enc = FixedEncoder(table)
    rows = [{"label": int(y), "prompt": t, "source": "test"} for t, y in zip(texts, labels, strict=True)]
    bank = write_caption_bank(tmp_path / "bank", rows, enc)
    assert (
        write_caption_bank(tmp_path / "bank", rows, enc) == bank and enc.calls == 1
    )  # reused, not re-encoded
    t2, l2, e2 = read_caption_bank(bank)
    assert t2 == texts and torch.equal(l2, labels) and torch.equal(e2, emb)
    m = TextToImageGAN.from_config({**dataclasses_asdict(tiny_config()), "captions": str(bank)})
    assert m.config.bank_size == 20 and sorted(m.bank_texts) == sorted(texts)
    with pytest.raises(ValueError, match="not a caption bank"):
        read_caption_bank(tmp_path)
    tp = TemplatePrompts(["fog", "rain"])
    got = caption_rows(tp, None, template_per_class=3, seed=0)
    assert [r["label"] for r in got] == [0, 0, 0, 1, 1, 1] and {r["source"] for r in got} == {"template"}
    assert [r["prompt"] for r in got[:3]] == tp.prompts(0, 3, seed=0)


def dataclasses_asdict(cfg: T2IConfig) -> dict[str, object]:
    import dataclasses

    return dataclasses.asdict(cfg)


def test_recipe_trains_t2i_and_shards_name_their_render_prompts(tmp_path: Path) -> None:
    from augmentgen.recipes import recipe_from_text
    from augmentgen.recipes.run import run_recipe
    from augmentgen.shards.reader import decode_sample, iter_raw_samples, shard_paths

    text = """
name: digits-t2i
num_threads: 1
data: {source: digits, n_per_class: 20}
classifier: {steps: 20, batch_size: 64, width: 8}
text_to_image: {template_per_class: 4, llm_per_class: 0, render: template, render_per_class: 3, render_seed: 1}
generators:
  - {name: t2i, kind: t2i, model: {image_size: 8, g_width: 8, d_width: 8, latent_dim: 8, cond_dim: 8},
     train: {steps: 20, batch_size: 32, log_every: 10, sample_every: 0, checkpoint_every: 0, monitor: {collapse_every: 0}}}
shards: {name: d, count: 1, size: 40, format: png, seed: 0, batch_size: 20}
checks: {enabled: false}
evaluate: {enabled: false}
"""
    r = recipe_from_text(text)
    out = tmp_path / "run"
    run_recipe(r, out, stages=("train", "generate", "verify"))
    train_rows = (out / "prompts" / "train" / "captions.jsonl").read_text().splitlines()
    render_rows = [
        json.loads(x) for x in (out / "prompts" / "render" / "captions.jsonl").read_text().splitlines()
    ]
    assert len(train_rows) == 40 and len(render_rows) == 30
    model = TextToImageGAN.from_pretrained(out / "generators" / "t2i" / "model")
    assert sorted(model.bank_texts) == sorted(
        x["prompt"] for x in render_rows
    )  # the shipped model renders these
    by_text = {x["prompt"]: x["label"] for x in render_rows}
    samples = [decode_sample(s) for p in shard_paths(out / "shards" / "t2i") for s in iter_raw_samples(p)]
    assert len(samples) == 40
    for s in samples:
        prompt = s["meta"]["prompt"]
        assert by_text[prompt] == s["label"]  # each sample names a render prompt of its own class
    with pytest.raises(ValueError, match="need a text_to_image section"):
        recipe_from_text(text.replace("text_to_image:", "unused_key:").replace("unused_key: {", "#{"))


def test_center_text_removes_the_shared_component_and_round_trips(tmp_path: Path) -> None:
    texts, labels, emb = clustered_captions()
    emb = emb + 5.0 * torch.ones(TEXT_DIM)  # a large shared component, like "a photo of ..." in real captions
    m = TextToImageGAN(tiny_config(center_text=True))
    m.set_captions(texts, labels, emb)
    raw = m.class_text @ m.class_text.t()
    centered = m._centered(m.class_text)
    cos = centered @ centered.t()
    off = ~torch.eye(10, dtype=torch.bool)
    assert float(raw[off].mean()) > 0.9 and float(cos[off].abs().mean()) < 0.5
    assert torch.allclose(m.text_mean, m.class_text.mean(0))
    m.save_pretrained(tmp_path / "m")
    back = TextToImageGAN.from_pretrained(tmp_path / "m")
    assert torch.equal(back.text_mean, m.text_mean)
    a = m.eval().generate(torch.arange(10), 10, torch.Generator().manual_seed(0)).image
    assert torch.equal(a, back.generate(torch.arange(10), 10, torch.Generator().manual_seed(0)).image)


# ---- mode seeking ----------------------------------------------------------------------------------------


def test_mode_seeking_ratio_golden() -> None:
    from augmentgen.generators.t2i import mode_seeking_ratio

    x1, x2 = torch.zeros(3, 1, 2, 2), torch.full((3, 1, 2, 2), 0.3)
    z1, z2 = torch.zeros(3, 4), torch.full((3, 4), 2.0)
    assert float(mode_seeking_ratio(x1, x2, z1, z2)) == pytest.approx(0.15)
    assert float(mode_seeking_ratio(x1, x2, z1, z1)) > 1e6  # equal z: no division by zero


class _Ctx:
    def __init__(self, model: TextToImageGAN) -> None:
        self.step, self.losses = 0, {}
        self.opt = {k: torch.optim.SGD(v, lr=0.0) for k, v in model.param_groups().items()}

    def optimize(self, name: str, loss: Tensor) -> None:
        self.losses[name] = float(loss.detach())
        self.opt[name].zero_grad()
        loss.backward()


@pytest.mark.parametrize("batch", [8, 9])
def test_mode_seeking_pairs_share_a_caption_and_add_a_term(batch: int, digits: Batch) -> None:
    m = TextToImageGAN(tiny_config(mode_seeking=1.0))
    m.set_captions(*clustered_captions())
    seen: list[tuple[Tensor, Tensor]] = []
    m.g.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].detach(), inp[1].detach())))
    image = torch.nn.functional.interpolate(digits.image[:batch].float() / 255, size=8)
    real = Batch(image=image, label=digits.label[:batch])
    rec = m.training_step(real, torch.Generator().manual_seed(0), _Ctx(m))
    z, t = seen[-1]  # the generator step's inputs
    half = batch // 2
    assert torch.equal(t[:half], t[batch - half :]) and not torch.equal(z[:half], z[batch - half :])
    assert np.isfinite(rec["ms_ratio"]) and rec["ms_ratio"] > 0
    # with a discriminator that says 0 to everything, the hinge G loss is the mode-seeking term alone
    p0 = next(m.d.parameters())
    m.d.forward = lambda x, t: x.flatten(1).sum(1) * 0.0 + p0.sum() * 0.0  # type: ignore[method-assign]
    rec = m.training_step(real, torch.Generator().manual_seed(0), _Ctx(m))
    assert rec["loss_g"] == pytest.approx(1.0 / (rec["ms_ratio"] + 1e-5), rel=1e-5)
    off = TextToImageGAN(tiny_config())
    off.set_captions(*clustered_captions())
    assert "ms_ratio" not in off.training_step(real, torch.Generator().manual_seed(0), _Ctx(off))
    with pytest.raises(ValueError, match="mode_seeking"):
        T2IConfig(mode_seeking=-1.0)
