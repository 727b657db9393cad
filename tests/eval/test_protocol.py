"""The downstream protocol: arms, sizes, determinism under a seed, and errors for missing parts."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from augmentgen.core import Batch
from augmentgen.eval.classifier import ClassifierConfig
from augmentgen.eval.protocol import (
    _T975,
    ArmResult,
    augment_copies,
    evaluate_arms,
    paired_difference,
    repeat_to_share,
    synthetic_set,
)


class _Repeat:
    """A 'generator' that returns real images of the asked label (a stand-in, fast and deterministic)."""

    def __init__(self, data: Batch) -> None:
        self.data = data

    def generate(self, condition: torch.Tensor, n: int, rng: torch.Generator, **kw: Any) -> Batch:
        assert self.data.label is not None
        rows = [int(torch.nonzero(self.data.label == c)[0]) for c in condition.tolist()]
        return Batch(image=self.data.image[rows], label=condition.clone())


def _shift(batch: Batch, *, rng: torch.Generator) -> Batch:
    k = int(torch.randint(1, 3, (1,), generator=rng))
    return batch.replace(image=torch.roll(batch.image, k, dims=-1))


KW = {
    "config": ClassifierConfig(image_size=8, width=4, hidden=16),
    "steps": 15,
    "batch_size": 32,
    "augment": False,
}


def test_arms_sizes_and_determinism(digits_train: Batch, digits_test: Batch) -> None:
    real = digits_train.index(torch.arange(200))
    gens = {"a": _Repeat(digits_train), "b": _Repeat(digits_train)}
    run = lambda: evaluate_arms(  # noqa: E731
        real, digits_test, num_classes=10, pipeline=_shift, generators=gens, seeds=[0, 1],
        classical_copies=2, synthetic_per_class=5, classifier_kwargs=KW,
    )  # fmt: skip
    ev = run()
    assert list(ev.arms) == ["real", "real_classical", "real_classical_synthetic", "synthetic"]
    assert {k: v.train_images for k, v in ev.arms.items()} == {
        "real": 200,
        "real_classical": 600,
        "real_classical_synthetic": 650,
        "synthetic": 50,
    }
    for a in ev.arms.values():
        assert len(a.accuracy) == 2 and all(0.0 <= x <= 1.0 for x in a.accuracy)
    again = run()
    assert {k: v.accuracy for k, v in again.arms.items()} == {k: v.accuracy for k, v in ev.arms.items()}
    d = ev.to_dict()
    assert d["gains"]["synthetic_over_classical"] == pytest.approx(
        ev.arms["real_classical_synthetic"].mean - ev.arms["real_classical"].mean
    )
    rc, rcs = ev.arms["real_classical"].accuracy, ev.arms["real_classical_synthetic"].accuracy
    paired = d["paired"]["synthetic_over_classical"]
    assert paired["seeds"] == [0, 1]
    assert paired["per_seed"] == pytest.approx([rcs[0] - rc[0], rcs[1] - rc[1]])
    assert set(d["paired"]) == set(d["gains"])


_acc = st.floats(0.0, 1.0, allow_nan=False)


@given(
    base=st.lists(_acc, min_size=2, max_size=12),
    shift=st.lists(st.floats(-0.05, 0.05, allow_nan=False), min_size=12, max_size=12),
)
def test_paired_difference_is_the_mean_of_per_seed_differences(base: list[float], shift: list[float]) -> None:
    seeds = list(range(len(base)))
    other = [b + s for b, s in zip(base, shift)]
    a, b = ArmResult("x", seeds, other, 1, 0.0), ArmResult("y", seeds, base, 1, 0.0)
    d = paired_difference(a, b)
    assert d["mean"] == pytest.approx(a.mean - b.mean, abs=1e-12)
    lo, hi = d["interval95"]
    assert lo <= d["mean"] <= hi
    assert d["verdict"] == ("higher" if lo > 0 else "lower" if hi < 0 else "within the seed noise")
    # the other way round: the same interval, negated, and the opposite verdict
    r = paired_difference(b, a)
    assert r["interval95"] == pytest.approx([-hi, -lo], abs=1e-12)
    assert r["verdict"] == {"higher": "lower", "lower": "higher"}.get(d["verdict"], d["verdict"])


def test_paired_difference_sees_a_steady_gain_the_arms_spread_hides() -> None:
    # seeds differ by 2 points, the gain is 0.5 on every seed: the arms' stds overlap, the pairs do not
    base = [0.70, 0.72, 0.74, 0.71]
    a = ArmResult("rcs", [0, 1, 2, 3], [x + 0.005 + 0.0005 * (i % 2) for i, x in enumerate(base)], 1, 0.0)
    b = ArmResult("rc", [0, 1, 2, 3], base, 1, 0.0)
    assert a.mean - b.mean < b.std
    assert paired_difference(a, b)["verdict"] == "higher"
    # a loss that flips sign across seeds is noise
    c = ArmResult("rcs", [0, 1, 2, 3], [0.705, 0.715, 0.745, 0.705], 1, 0.0)
    assert paired_difference(c, b)["verdict"] == "within the seed noise"


def test_paired_difference_uses_only_common_seeds_and_needs_two() -> None:
    a = ArmResult("x", [0, 1, 2], [0.5, 0.6, 0.7], 1, 0.0)
    b = ArmResult("y", [2, 1, 5], [0.6, 0.4, 0.9], 1, 0.0)
    d = paired_difference(a, b)
    assert d["seeds"] == [2, 1] and d["per_seed"] == pytest.approx([0.1, 0.2])
    one = paired_difference(a, ArmResult("y", [1], [0.5], 1, 0.0))
    assert one["per_seed"] == pytest.approx([0.1]) and one["std"] is None
    assert one["verdict"] == "within the seed noise"


def test_t_quantiles_are_students() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for df, q in enumerate(_T975, start=1):
        assert q == pytest.approx(float(scipy_stats.t.ppf(0.975, df)), abs=1e-4)


def test_mean_and_std() -> None:
    a = ArmResult("real", [0, 1, 2], [0.5, 0.6, 0.7], 10, 1.0)
    assert a.mean == pytest.approx(0.6) and a.std == pytest.approx(0.1)
    assert ArmResult("real", [0], [0.5], 10, 1.0).std == 0.0


def test_helpers(digits_train: Batch) -> None:
    real = digits_train.index(torch.arange(30))
    aug = augment_copies(real, _shift, 3, seed=0)
    assert aug.image.shape == (90, *real.image.shape[1:]) and aug.image.dtype == torch.uint8
    assert torch.equal(aug.label, real.label.repeat(3))  # type: ignore[union-attr]
    syn = synthetic_set({"a": _Repeat(digits_train), "b": _Repeat(digits_train)}, 10, 3, seed=0)
    assert syn.batch_size == 30 and torch.bincount(syn.label, minlength=10).tolist() == [3] * 10  # type: ignore[arg-type]


def test_missing_parts_are_errors(digits_train: Batch, digits_test: Batch) -> None:
    with pytest.raises(ValueError, match="classical arms need a pipeline"):
        evaluate_arms(
            digits_train, digits_test, num_classes=10, pipeline=None, generators={}, arms=["real_classical"]
        )
    with pytest.raises(ValueError, match="synthetic arms need at least one generator"):
        evaluate_arms(
            digits_train, digits_test, num_classes=10, pipeline=_shift, generators={}, arms=["synthetic"]
        )
    with pytest.raises(ValueError, match="unknown arm"):
        evaluate_arms(digits_train, digits_test, num_classes=10, pipeline=None, generators={}, arms=["nope"])


def test_pretrain_schedule_fine_tunes_on_real_and_classical(
    digits_train: Batch, digits_test: Batch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'pretrain': half the steps on real + classical + synthetic, then half on real + classical from those weights."""
    import augmentgen.eval.protocol as protocol

    calls: list[dict[str, Any]] = []
    real_train = protocol.train_classifier

    def spy(data: Batch, **kw: Any) -> Any:
        run = real_train(data, **kw)
        calls.append({"rows": data.batch_size, "steps": kw["steps"], "init": kw.get("init"), "model": run.model,
                      "tested": kw.get("test") is not None})  # fmt: skip
        return run

    monkeypatch.setattr(protocol, "train_classifier", spy)
    real = digits_train.index(torch.arange(200))
    common: dict[str, Any] = {
        "num_classes": 10, "pipeline": _shift, "generators": {"a": _Repeat(digits_train)},
        "arms": ["real_classical_synthetic"], "seeds": [0], "classical_copies": 2,
        "synthetic_per_class": 5, "classifier_kwargs": KW,
    }  # fmt: skip
    mixed = evaluate_arms(real, digits_test, **common)
    assert [(c["rows"], c["steps"], c["init"]) for c in calls] == [(650, 15, None)]
    calls.clear()
    ev = evaluate_arms(real, digits_test, synthetic_schedule="pretrain", **common)
    first, second = calls
    assert (first["rows"], first["steps"], first["init"], first["tested"]) == (650, 7, None, False)
    assert (second["rows"], second["steps"], second["tested"]) == (600, 7, True)
    assert second["init"] is first["model"]
    assert ev.settings["synthetic_schedule"] == "pretrain" and mixed.settings["synthetic_schedule"] == "mix"
    assert ev.arms["real_classical_synthetic"].train_images == 650
    with pytest.raises(ValueError, match="synthetic_schedule 'later'"):
        evaluate_arms(real, digits_test, synthetic_schedule="later", **common)


@given(n_rc=st.integers(1, 400), n_syn=st.integers(1, 4000), share=st.floats(0.05, 0.95))
@settings(max_examples=60, deadline=None)
def test_repeat_to_share_lands_nearest_the_asked_share(n_rc: int, n_syn: int, share: float) -> None:
    rc = Batch(
        image=torch.arange(n_rc, dtype=torch.uint8).view(n_rc, 1, 1, 1),
        label=torch.zeros(n_rc, dtype=torch.int64),
    )
    out = repeat_to_share(rc, n_syn, share)
    reps, rest = divmod(out.batch_size, n_rc)
    assert rest == 0 and reps >= 1
    assert torch.equal(out.image[:n_rc], rc.image) and torch.equal(out.image[-n_rc:], rc.image)

    def miss(r: int) -> float:  # how far r copies land from the asked share, in copies
        return abs(r - n_syn * (1 - share) / (share * n_rc))

    assert reps == 1 or miss(reps) <= miss(reps - 1) + 1e-9, "one copy fewer would be nearer"
    assert miss(reps) <= miss(reps + 1) + 1e-9 or reps == 1, "one copy more would be nearer"
    assert repeat_to_share(rc, n_syn, None) is rc


def test_repeat_to_share_rejects_bad_shares() -> None:
    rc = Batch(image=torch.zeros(4, 1, 1, 1, dtype=torch.uint8), label=torch.zeros(4, dtype=torch.int64))
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="synthetic_share"):
            repeat_to_share(rc, 10, bad)


def test_synthetic_share_repeats_real_and_classical_in_that_arm_only(
    digits_train: Batch, digits_test: Batch
) -> None:
    real = digits_train.index(torch.arange(100))
    ev = evaluate_arms(
        real, digits_test, num_classes=10, pipeline=_shift, generators={"a": _Repeat(digits_train)},
        arms=["real_classical", "real_classical_synthetic", "synthetic"], seeds=[0], classical_copies=1,
        synthetic_per_class=40, synthetic_share=0.5, classifier_kwargs=KW,
    )  # fmt: skip
    # 400 synthetic rows against 200 real + classical: two copies of those make it half and half
    assert {k: v.train_images for k, v in ev.arms.items()} == {
        "real_classical": 200,
        "real_classical_synthetic": 800,
        "synthetic": 400,
    }
    assert ev.settings["synthetic_share"] == 0.5


class _DiesInChild(_Repeat):
    """Generates in this process; a forked child that asks for images dies at once (like an OOM kill)."""

    def __init__(self, data: Batch, parent: int) -> None:
        super().__init__(data)
        self.parent = parent

    def generate(self, condition: torch.Tensor, n: int, rng: torch.Generator, **kw: Any) -> Batch:
        import os

        if os.getpid() != self.parent:
            os._exit(3)
        return super().generate(condition, n, rng, **kw)


class _Fails(_Repeat):
    def generate(self, condition: torch.Tensor, n: int, rng: torch.Generator, **kw: Any) -> Batch:
        raise ValueError("generator says no")


def test_forked_workers_give_the_same_accuracies(digits_train: Batch, digits_test: Batch) -> None:
    real = digits_train.index(torch.arange(200))
    gens = {"a": _Repeat(digits_train)}
    seen: list[tuple[str, int]] = []
    run = lambda w: evaluate_arms(  # noqa: E731
        real, digits_test, num_classes=10, pipeline=_shift, generators=gens, seeds=[0, 1, 2],
        classical_copies=2, synthetic_per_class=5, classifier_kwargs=KW, workers=w,
        on_step=lambda arm, seed: seen.append((arm, seed)),
    )  # fmt: skip
    inline = run(1)
    assert len(seen) == 12
    seen.clear()
    forked = run(3)
    assert sorted(seen) == sorted((a, s) for a in inline.arms for s in (0, 1, 2))
    assert {k: v.accuracy for k, v in forked.arms.items()} == {k: v.accuracy for k, v in inline.arms.items()}
    assert {k: v.train_images for k, v in forked.arms.items()} == {k: v.train_images for k, v in inline.arms.items()}


def test_a_forked_workers_error_reaches_the_caller(digits_train: Batch, digits_test: Batch) -> None:
    import os

    real = digits_train.index(torch.arange(100))
    common: dict[str, Any] = dict(
        num_classes=10, pipeline=_shift, arms=["synthetic"], seeds=[0, 1],
        synthetic_per_class=2, classifier_kwargs=KW, workers=2,
    )  # fmt: skip
    with pytest.raises(ValueError, match="generator says no"):
        evaluate_arms(real, digits_test, generators={"a": _Fails(digits_train)}, **common)
    with pytest.raises(RuntimeError, match=r"the evaluation of \(arm, seed\) \('synthetic', [01]\) died"):
        evaluate_arms(real, digits_test, generators={"a": _DiesInChild(digits_train, os.getpid())}, **common)
    # the same generator in this process works: the failure was the child's death, reported as such
    ok = evaluate_arms(real, digits_test, generators={"a": _DiesInChild(digits_train, os.getpid())}, **{**common, "workers": 1})
    assert len(ok.arms["synthetic"].accuracy) == 2


class _HalfBlank(_Repeat):
    """Every other row of a request is blank: the kind of image a confidence filter should drop."""

    def generate(self, condition: torch.Tensor, n: int, rng: torch.Generator, **kw: Any) -> Batch:
        out = super().generate(condition, n, rng, **kw)
        image = out.image.clone()
        image[1::2] = 0
        return out.replace(image=image)


def _sure_of_drawn_digits(data: Batch) -> Any:
    """Logits that know ``_Repeat``'s image of each class for sure and are anyone's guess on a blank."""
    assert data.label is not None
    protos = torch.stack([data.image[int(torch.nonzero(data.label == c)[0])] for c in range(10)]).flatten(1).float()

    if data.image.dtype != torch.uint8:
        protos = (protos * 255).round()

    def logits(images: torch.Tensor) -> torch.Tensor:  # the evaluation hands it uint8 images
        return 5.0 * (torch.cdist(images.flatten(1).float(), protos) < 0.5).float()

    return logits


def test_synthetic_oversample_keeps_the_rows_the_classifier_is_surest_of(
    digits_train: Batch, digits_test: Batch, monkeypatch: pytest.MonkeyPatch
) -> None:
    import augmentgen.eval.protocol as protocol

    seen: list[Batch] = []
    real_train = protocol.train_classifier

    def spy(data: Batch, **kw: Any) -> Any:
        seen.append(data)
        return real_train(data, **kw)

    monkeypatch.setattr(protocol, "train_classifier", spy)
    real = digits_train.index(torch.arange(100))
    common: dict[str, Any] = {
        "num_classes": 10, "pipeline": None, "generators": {"a": _HalfBlank(digits_train)}, "arms": ["synthetic"],
        "seeds": [0], "synthetic_per_class": 4, "classifier_kwargs": KW, "workers": 1,
    }  # fmt: skip
    as_drawn = evaluate_arms(real, digits_test, **common)
    assert as_drawn.settings["synthetic_oversample"] == 1
    assert (seen[-1].image.flatten(1).sum(1) == 0).sum() == 20  # half of the 40 rows are blank
    ev = evaluate_arms(real, digits_test, synthetic_oversample=2, confidence=_sure_of_drawn_digits(digits_train), **common)
    kept = seen[-1]
    assert ev.arms["synthetic"].train_images == 40 and ev.settings["synthetic_oversample"] == 2
    assert bool((kept.image.flatten(1).sum(1) > 0).all())  # 80 drawn, the 40 blank ones dropped
    assert kept.label is not None and torch.bincount(kept.label, minlength=10).tolist() == [4] * 10
    with pytest.raises(ValueError, match="synthetic_oversample must be >= 1"):
        evaluate_arms(real, digits_test, synthetic_oversample=2, **common)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 6), min_size=3, max_size=3),
    per_class=st.integers(1, 5),
    seed=st.integers(0, 10_000),
    hardest=st.booleans(),
)
def test_keep_confident_keeps_the_most_confident_per_class(
    counts: list[int], per_class: int, seed: int, hardest: bool
) -> None:
    from augmentgen.eval.protocol import keep_confident

    g = torch.Generator().manual_seed(seed)
    label = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)]).long()
    logits = torch.randn(label.shape[0], 3, generator=g)
    image = torch.arange(label.shape[0]).float().reshape(-1, 1, 1, 1)  # row ids ride along as pixels
    out = keep_confident(Batch(image=image, label=label), lambda x: logits[x.flatten().long()], 3, per_class, hardest)
    prob = logits.softmax(1).gather(1, label[:, None])[:, 0]
    assert out.label is not None
    kept = set(out.image.flatten().long().tolist())
    for c, n in enumerate(counts):
        rows = [i for i in range(label.shape[0]) if int(label[i]) == c]
        mine = [i for i in rows if i in kept]
        assert len(mine) == min(n, per_class)
        dropped = [i for i in rows if i not in kept]
        if mine and dropped:
            if hardest:
                assert max(prob[mine]) <= min(prob[dropped])
            else:
                assert min(prob[mine]) >= max(prob[dropped])


def test_label_mix_trains_the_classical_arms_only(digits_train: Batch, digits_test: Batch) -> None:
    real = digits_train.index(torch.arange(200))
    common: dict[str, Any] = {
        "num_classes": 10, "pipeline": _shift, "generators": {"a": _Repeat(digits_train)}, "seeds": [0],
        "classical_copies": 2, "synthetic_per_class": 5, "classifier_kwargs": KW, "workers": 1,
    }  # fmt: skip
    plain = evaluate_arms(real, digits_test, **common)
    mix = {"mixup_alpha": 0.4, "cutmix_alpha": 1.0}
    mixed = evaluate_arms(real, digits_test, label_mix=mix, **common)
    again = evaluate_arms(real, digits_test, label_mix=mix, **common)
    acc = lambda ev: {arm: a.accuracy for arm, a in ev.arms.items()}  # noqa: E731
    assert acc(mixed) == acc(again)
    for arm in ("real", "synthetic"):  # trained as they are
        assert mixed.arms[arm].accuracy == plain.arms[arm].accuracy
    for arm in ("real_classical", "real_classical_synthetic"):
        assert mixed.arms[arm].accuracy != plain.arms[arm].accuracy
    assert mixed.settings["label_mix"] == mix and plain.settings["label_mix"] is None
    with pytest.raises(ValueError, match="both 0"):
        evaluate_arms(real, digits_test, label_mix={"mixup_alpha": 0, "cutmix_alpha": 0}, **common)


def test_synthetic_pipeline_passes_the_generated_rows_of_that_arm_only(digits_train: Batch, digits_test: Batch) -> None:
    real = digits_train.index(torch.arange(200))
    seen: list[tuple[int, torch.Tensor]] = []

    def invert(batch: Batch, *, rng: torch.Generator) -> Batch:  # a spy: what reaches it, and a visible change
        assert batch.label is not None
        seen.append((batch.batch_size, batch.label.clone()))
        return batch.replace(image=1.0 - batch.image)

    common: dict[str, Any] = {
        "num_classes": 10, "pipeline": _shift, "generators": {"a": _Repeat(digits_train)}, "seeds": [0, 1],
        "classical_copies": 2, "synthetic_per_class": 5, "classifier_kwargs": KW, "workers": 1,
    }  # fmt: skip
    plain = evaluate_arms(real, digits_test, **common)
    inverted = evaluate_arms(real, digits_test, synthetic_pipeline=invert, **common)
    # once per seed, on the 50 generated rows (5 a class) and nothing else
    assert [n for n, _ in seen] == [50, 50]
    assert all(torch.equal(torch.bincount(lab, minlength=10), torch.full((10,), 5)) for _, lab in seen)
    for arm in ("real", "real_classical", "synthetic"):  # CAS keeps the images as drawn
        assert inverted.arms[arm].accuracy == plain.arms[arm].accuracy
    assert inverted.arms["real_classical_synthetic"].accuracy != plain.arms["real_classical_synthetic"].accuracy
    assert inverted.settings["synthetic_pipeline"] and not plain.settings["synthetic_pipeline"]
