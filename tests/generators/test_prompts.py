"""TemplatePrompts: deterministic, prefix-stable, on its vocabulary; class vocabularies validated."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augmentgen.generators.prompts import FASHION_MNIST_VOCAB, ClassVocab, TemplatePrompts

TP = TemplatePrompts.fashion_mnist()


def test_fashion_mnist_vocab_names() -> None:
    assert TP.class_names == [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]  # fmt: skip
    assert all(v.description and v.synonyms and v.attributes and v.contexts for v in FASHION_MNIST_VOCAB)


@settings(max_examples=40, deadline=None)
@given(label=st.integers(0, 9), n=st.integers(0, 40), k=st.integers(0, 40), seed=st.integers(0, 2**40))
def test_deterministic_and_prefix_stable(label: int, n: int, k: int, seed: int) -> None:
    a = TP.prompts(label, n, seed=seed)
    assert a == TP.prompts(TP.class_names[label], n, seed=seed)
    assert len(a) == n and all(isinstance(p, str) and p for p in a)
    b = TP.prompts(label, k, seed=seed)
    m = min(n, k)
    assert a[:m] == b[:m]


@settings(max_examples=40, deadline=None)
@given(label=st.integers(0, 9), seed=st.integers(0, 2**31))
def test_prompts_use_the_class_nouns_and_are_clean(label: int, seed: int) -> None:
    v = FASHION_MNIST_VOCAB[label]
    for p in TP.prompts(label, 12, seed=seed):
        assert any(noun in p for noun in v.nouns), p
        assert p == p.strip() and "  " not in p and " ," not in p and not p.endswith(",")
        assert len(p.split()) <= 16


def test_no_repeats_while_the_grammar_has_room() -> None:
    for label in range(10):
        ps = TP.prompts(label, 60, seed=3)
        assert len(set(ps)) == 60


def test_seeds_and_classes_differ() -> None:
    assert TP.prompts(0, 10, seed=0) != TP.prompts(0, 10, seed=1)
    assert set(TP.prompts(7, 10, seed=0)).isdisjoint(TP.prompts(9, 10, seed=0))


def test_articles() -> None:
    sneakers = " | ".join(TP.prompts("Sneaker", 200, seed=0))
    assert "a athletic" not in sneakers and "an athletic shoe" in sneakers
    trousers = TP.prompts("Trouser", 50, seed=0)
    assert all("a pair of" in p for p in trousers)
    fog = TemplatePrompts([ClassVocab("fog", "a street in fog", article="")]).prompts("fog", 5, seed=0)
    assert all("a fog" not in p for p in fog) and all("fog" in p for p in fog)


def test_generic_names_and_captions() -> None:
    tp = TemplatePrompts(["daylight", "dusk", "night"])
    assert tp.describe("dusk") == "dusk" and tp.index("NIGHT") == 2
    caps = TP.captions([7, 7, 0], seed=5)
    assert caps == TP.captions([7, 7, 0], seed=5)
    assert TP.captions([7, 7, 0, 9], seed=5)[:3] == caps  # row i depends on (seed, i) only
    assert any(n in caps[2] for n in FASHION_MNIST_VOCAB[0].nouns)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown class 'Hat'"):
        TP.prompts("Hat", 3)
    with pytest.raises(ValueError, match="out of range"):
        TP.prompts(10, 3)
    with pytest.raises(ValueError, match="non-negative"):
        TP.prompts(0, -1)
    with pytest.raises(TypeError, match="seed"):
        TP.prompts(0, 2, seed="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="repeated"):
        TemplatePrompts(["a", "a"])
    with pytest.raises(ValueError, match="no \\{noun\\} slot"):
        TemplatePrompts(["a"], templates=("a photo",))
    with pytest.raises(ValueError, match="synonyms"):
        ClassVocab("x", synonyms="shoe")  # type: ignore[arg-type]
