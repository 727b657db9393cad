"""Reference classifier: learns digits, is deterministic, round-trips through files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from augmentgen.core import Batch
from augmentgen.eval.classifier import (
    ClassifierConfig,
    ReferenceClassifier,
    random_shift,
    smoothed_cross_entropy,
    train_classifier,
)

SMALL = ClassifierConfig(image_size=8, width=8, hidden=32)


def test_learns_digits_and_is_deterministic(digits_train: Batch, digits_test: Batch) -> None:
    run = train_classifier(digits_train, config=SMALL, steps=150, batch_size=64, lr=3e-3, test=digits_test)
    assert run.test_accuracy is not None and run.test_accuracy > 0.9
    assert run.history[-1]["loss"] < run.history[0]["loss"] or len(run.history) == 1
    again = train_classifier(digits_train, config=SMALL, steps=20, batch_size=64, seed=0)
    twice = train_classifier(digits_train, config=SMALL, steps=20, batch_size=64, seed=0)
    other = train_classifier(digits_train, config=SMALL, steps=20, batch_size=64, seed=1)
    sd1, sd2, sd3 = again.model.state_dict(), twice.model.state_dict(), other.model.state_dict()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert not all(torch.equal(sd1[k], sd3[k]) for k in sd1)


def test_save_load_round_trip(tmp_path: Path, digits_test: Batch) -> None:
    run = train_classifier(digits_test, config=SMALL, steps=5, batch_size=32)
    run.model.save_pretrained(tmp_path / "clf", meta={"test_accuracy": 0.5})
    loaded = ReferenceClassifier.from_pretrained(tmp_path / "clf")
    assert torch.equal(loaded.predict_logits(digits_test.image), run.model.predict_logits(digits_test.image))
    from augmentgen.generators import ConditionalVAE

    with pytest.raises(ValueError, match="not a 'cvae'"):
        ConditionalVAE.from_pretrained(tmp_path / "clf")


def test_uint8_and_float_inputs_agree(digits_test: Batch) -> None:
    clf = ReferenceClassifier(SMALL)
    as_u8 = (digits_test.image * 255).round().to(torch.uint8)
    assert torch.allclose(clf.predict_logits(as_u8), clf.predict_logits(as_u8.float() / 255), atol=1e-6)


def test_random_shift() -> None:
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    assert torch.equal(random_shift(x, 0, torch.Generator()), x)
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    # every output pixel is zero fill or a pixel of the same input image
    for i in range(2):
        vals = set(y[i].flatten().tolist()) - {0.0}
        assert vals <= set(x[i].flatten().tolist())
    assert torch.equal(y, random_shift(x, 2, torch.Generator().manual_seed(0)))


def test_init_fine_tunes_from_given_weights(digits_train: Batch, digits_test: Batch) -> None:
    """``init=`` starts from a trained model: lr 0 keeps its weights, a few steps keep its accuracy."""
    first = train_classifier(digits_train, steps=150, batch_size=64, seed=0, test=digits_test)
    frozen = train_classifier(digits_train, steps=3, lr=0.0, seed=5, init=first.model)
    kept = dict(frozen.model.named_parameters())  # (batch-norm running stats still move in training)
    for k, v in first.model.named_parameters():
        assert torch.equal(v, kept[k]), k
    fresh = train_classifier(digits_train, steps=3, lr=0.0, seed=5)
    assert not torch.equal(
        fresh.model.state_dict()["net.out.weight"], first.model.state_dict()["net.out.weight"]
    )
    tuned = train_classifier(digits_train, steps=20, lr=1e-4, seed=1, test=digits_test, init=first.model)
    assert tuned.test_accuracy is not None and first.test_accuracy is not None
    assert tuned.test_accuracy > 0.8 and abs(tuned.test_accuracy - first.test_accuracy) < 0.05


@given(
    b=st.integers(1, 12),
    k=st.integers(2, 10),
    eps=st.lists(st.floats(0.0, 0.95), min_size=1, max_size=12),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None)
def test_smoothed_cross_entropy_is_torch_label_smoothing_per_row(b: int, k: int, eps: list[float], seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, k, (b,), generator=g)
    e = torch.tensor((eps * b)[:b], dtype=torch.float64)
    rows = [
        F.cross_entropy(logits[i : i + 1], target[i : i + 1], label_smoothing=float(e[i])) for i in range(b)
    ]
    got = smoothed_cross_entropy(logits, target, e)
    assert torch.isclose(got, torch.stack(rows).mean().float(), rtol=1e-5, atol=1e-6)
    assert torch.isclose(  # one value for every row: torch's own label smoothing
        smoothed_cross_entropy(logits, target, torch.full((b,), e[0].item())),
        F.cross_entropy(logits, target, label_smoothing=float(e[0])).float(), rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_label_smoothing_rows_change_training_and_bad_values_are_errors(digits_train: Batch) -> None:
    data = digits_train.index(torch.arange(256))
    kw = {"config": SMALL, "steps": 10, "batch_size": 64, "seed": 0, "augment": False}
    plain = train_classifier(data, **kw).model.state_dict()
    zeros = train_classifier(data, label_smoothing=torch.zeros(256), **kw).model.state_dict()
    half = torch.cat([torch.zeros(128), torch.full((128,), 0.3)])
    smooth = train_classifier(data, label_smoothing=half, **kw).model.state_dict()
    # zero smoothing is plain cross-entropy (up to rounding of the other formula); 0.3 on half the rows is not
    assert all(torch.allclose(plain[k].float(), zeros[k].float(), atol=1e-4) for k in plain)
    assert not all(torch.allclose(plain[k].float(), smooth[k].float(), atol=1e-4) for k in plain)
    with pytest.raises(ValueError, match=r"one value per row \[256\]"):
        train_classifier(data, label_smoothing=torch.zeros(10), **kw)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        train_classifier(data, label_smoothing=torch.ones(256), **kw)


def test_soft_targets_equal_to_smoothed_labels_train_the_same_and_bad_rows_are_errors(digits_train: Batch) -> None:
    data = digits_train.index(torch.arange(256))
    assert data.label is not None
    kw = {"config": SMALL, "steps": 10, "batch_size": 64, "seed": 0, "augment": False}
    eps = torch.cat([torch.zeros(128), torch.full((128,), 0.3)])
    smooth = train_classifier(data, label_smoothing=eps, **kw).model.state_dict()
    # the distribution label smoothing aims at, given as soft targets, trains the same weights
    target = (1 - eps[:, None]) * F.one_hot(data.label, 10).float() + eps[:, None] / 10
    soft = train_classifier(data, soft_targets=target, **kw).model.state_dict()
    assert all(torch.allclose(smooth[k].float(), soft[k].float(), atol=1e-5) for k in smooth)
    # a teacher's belief on half the rows is not the hard label: other weights
    hard = train_classifier(data, **kw).model.state_dict()
    belief = F.one_hot(data.label, 10).float()
    belief[128:] = 0.5 * belief[128:] + 0.5 * torch.softmax(torch.randn(128, 10, generator=torch.Generator().manual_seed(0)), 1)
    taught = train_classifier(data, soft_targets=belief, **kw).model.state_dict()
    assert not all(torch.allclose(hard[k].float(), taught[k].float(), atol=1e-4) for k in hard)
    with pytest.raises(ValueError, match=r"\[N=256, K\]"):
        train_classifier(data, soft_targets=target[:10], **kw)
    with pytest.raises(ValueError, match="distribution"):
        train_classifier(data, soft_targets=target * 2, **kw)
    with pytest.raises(ValueError, match="not both"):
        train_classifier(data, soft_targets=target, label_smoothing=eps, **kw)


def test_label_mix_trains_on_mixed_targets_deterministically(digits_train: Batch) -> None:
    from augmentgen.pipeline import LabelMix

    data = digits_train.index(torch.arange(256))
    kw = {"config": SMALL, "steps": 10, "batch_size": 64, "seed": 0, "augment": False}
    plain = train_classifier(data, **kw).model.state_dict()
    # a mix that mixes no row learns one-hot targets: plain cross-entropy up to the formula's rounding
    idle = train_classifier(data, mix=LabelMix(10, p=0.0), **kw).model.state_dict()
    assert all(torch.allclose(plain[k].float(), idle[k].float(), atol=1e-4) for k in plain)
    mixed = train_classifier(data, mix=LabelMix(10, seed=1), **kw).model.state_dict()
    again = train_classifier(data, mix=LabelMix(10, seed=1), **kw).model.state_dict()
    assert all(torch.equal(mixed[k], again[k]) for k in mixed)
    assert not all(torch.allclose(plain[k].float(), mixed[k].float(), atol=1e-4) for k in plain)
    with pytest.raises(ValueError, match="mix excludes"):
        train_classifier(data, mix=LabelMix(10), label_smoothing=torch.zeros(256), **kw)


def test_bfloat16_training_is_deterministic_and_auto_follows_the_hardware(
    digits_train: Batch, monkeypatch: pytest.MonkeyPatch
) -> None:
    from augmentgen.core import system as hardware
    from augmentgen.eval import classifier as C

    data = digits_train.index(torch.arange(256))
    kw = {"config": SMALL, "steps": 10, "batch_size": 64, "seed": 0, "augment": False}
    plain = train_classifier(data, **kw).model.state_dict()
    half = train_classifier(data, precision="bfloat16", **kw).model.state_dict()
    again = train_classifier(data, precision="bfloat16", **kw).model.state_dict()
    assert all(torch.equal(half[k], again[k]) for k in half)
    assert all(half[k].dtype == plain[k].dtype for k in half)  # weights stay float32
    assert not all(torch.equal(plain[k], half[k]) for k in plain)  # bf16 rounding: other weights, close ones
    assert all(torch.allclose(plain[k].float(), half[k].float(), atol=0.05) for k in plain)
    with pytest.raises(ValueError, match="precision must be one of"):
        train_classifier(data, precision="float16", **kw)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert C.resolve_precision("auto") == "bfloat16" and C.resolve_precision("float32") == "float32"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    assert C.resolve_precision("auto") == "float32" and C.resolve_precision("bfloat16") == "bfloat16"
