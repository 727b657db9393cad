"""GeneratorEnsemble: round-robin rows, the same images as its members, self-contained folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from augmentgen.generators import GeneratorEnsemble, load_generator
from augmentgen.generators.config import GeneratorSpec

from .conftest import make_tiny_gan, make_tiny_vae


def _vaes(m: int) -> list[torch.nn.Module]:
    out = []
    for k in range(m):
        v = make_tiny_vae()
        with torch.no_grad():  # distinct members: perturb the decoder's output layer
            for p in v.decoder.parameters():
                p.add_(0.1 * k)
        out.append(v)
    return out


def test_row_i_comes_from_member_i_mod_m_with_the_members_own_images() -> None:
    a, b = _vaes(2)
    ens = GeneratorEnsemble([a, b])
    labels = torch.tensor([0, 1, 2, 3, 4])
    got = ens.generate(labels, 5, torch.Generator().manual_seed(7))
    rng = torch.Generator().manual_seed(7)  # the members draw from the caller's rng in turn
    want_a = a.generate(labels[0::2], 3, rng).image
    want_b = b.generate(labels[1::2], 2, rng).image
    assert torch.equal(got.image[0::2], want_a) and torch.equal(got.image[1::2], want_b)
    assert got.label.tolist() == labels.tolist() and got.meta["member"] == [0, 1, 0, 1, 0]
    assert got.meta["generator"] == ["ensemble/cvae"] * 5


@settings(max_examples=20, deadline=None)
@given(n=st.integers(0, 9), m=st.integers(1, 3), label=st.integers(0, 9))
def test_shapes_labels_and_members_for_any_n(n: int, m: int, label: int) -> None:
    ens = GeneratorEnsemble(_vaes(m))
    out = ens.generate(label, n, torch.Generator().manual_seed(0))
    assert out.image.shape == (n, 1, 8, 8) and out.label.tolist() == [label] * n
    assert out.meta["member"] == [i % m for i in range(n)]
    again = ens.generate(label, n, torch.Generator().manual_seed(0))
    assert torch.equal(out.image, again.image)


def test_save_load_round_trip_is_self_contained(tmp_path: Path) -> None:
    ens = GeneratorEnsemble(_vaes(3))
    ens.save_pretrained(tmp_path / "e", meta={"seeds": [0, 1, 2]})
    shutil.move(tmp_path / "e", tmp_path / "moved")  # member paths are inside the folder
    back = load_generator(tmp_path / "moved")
    assert isinstance(back, GeneratorEnsemble) and len(back.members) == 3
    x = ens.generate([1, 2, 3, 4], 4, torch.Generator().manual_seed(1)).image
    y = back.generate([1, 2, 3, 4], 4, torch.Generator().manual_seed(1)).image
    assert torch.equal(x, y)
    shutil.rmtree(tmp_path / "moved" / "members" / "2")
    with pytest.raises(ValueError, match="ensemble member 2 is missing"):
        load_generator(tmp_path / "moved")


def test_members_must_share_kind_and_classes() -> None:
    with pytest.raises(ValueError, match="share kind and classes"):
        GeneratorEnsemble([make_tiny_vae(), make_tiny_gan()])
    with pytest.raises(ValueError, match="share kind and classes"):
        GeneratorEnsemble([make_tiny_vae(), make_tiny_vae(num_classes=3)])
    with pytest.raises(ValueError, match="no members"):
        GeneratorEnsemble([])


def test_only_trainable_label_generators_form_ensembles() -> None:
    assert GeneratorSpec(name="v", kind="cvae", ensemble=4).ensemble == 4
    with pytest.raises(ValueError, match="ensemble"):
        GeneratorSpec(name="d", kind="diffusers", ensemble=2)
    with pytest.raises(ValueError):
        GeneratorSpec(name="v", kind="cvae", ensemble=0)
