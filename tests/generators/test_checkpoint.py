"""Checkpoints: exact round trips, clear errors for the wrong kind, shape or file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from augmentgen.core import GENERATORS, SampleGenerator
from augmentgen.generators import CGANConfig, ConditionalGAN, ConditionalVAE, load_generator
from augmentgen.generators import checkpoint as ckpt

from .conftest import make_tiny_gan, make_tiny_vae


@pytest.mark.parametrize("make", [make_tiny_gan, make_tiny_vae])
def test_round_trip_gives_same_samples(tmp_path: Path, make: object) -> None:
    model = make()  # type: ignore[operator]
    # move the weights away from their init so a silent re-init would be caught
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = type(model).from_pretrained(tmp_path / "m")
    labels = torch.arange(10)
    a = model.generate(labels, 10, torch.Generator().manual_seed(3)).image
    b = loaded.generate(labels, 10, torch.Generator().manual_seed(3)).image
    assert torch.equal(a, b)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    again = load_generator(tmp_path / "m")
    assert type(again) is type(model)
    assert isinstance(loaded, SampleGenerator)


def test_registry_holds_both() -> None:
    assert GENERATORS.get("cgan") is ConditionalGAN
    assert GENERATORS.get("cvae") is ConditionalVAE


def test_wrong_kind_is_clear(tmp_path: Path) -> None:
    make_tiny_vae().save_pretrained(tmp_path / "vae")
    with pytest.raises(ValueError, match="holds a 'cvae' checkpoint, not a 'cgan'"):
        ConditionalGAN.from_pretrained(tmp_path / "vae")


def test_wrong_shape_is_clear(tmp_path: Path) -> None:
    make_tiny_gan().save_pretrained(tmp_path / "g")
    cfg_path = tmp_path / "g" / "config.json"
    body = json.loads(cfg_path.read_text())
    body["config"]["g_width"] = 12
    cfg_path.write_text(json.dumps(body))
    with pytest.raises(ValueError, match="shape mismatch") as e:
        ConditionalGAN.from_pretrained(tmp_path / "g")
    assert "model.safetensors" in str(e.value)


def test_unknown_config_key_is_clear(tmp_path: Path) -> None:
    make_tiny_gan().save_pretrained(tmp_path / "g")
    cfg_path = tmp_path / "g" / "config.json"
    body = json.loads(cfg_path.read_text())
    body["config"]["depth"] = 3
    cfg_path.write_text(json.dumps(body))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['depth'\]"):
        ConditionalGAN.from_pretrained(tmp_path / "g")


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="config.json is missing"):
        ConditionalGAN.from_pretrained(tmp_path)
    make_tiny_gan().save_pretrained(tmp_path / "g")
    (tmp_path / "g" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="cannot be read as safetensors"):
        ConditionalGAN.from_pretrained(tmp_path / "g")
    (tmp_path / "g" / "config.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        ConditionalGAN.from_pretrained(tmp_path / "g")


def test_no_pickle_in_files(tmp_path: Path) -> None:
    make_tiny_gan().save_pretrained(tmp_path / "g")
    raw = (tmp_path / "g" / "model.safetensors").read_bytes()
    assert not raw.startswith(b"\x80")  # pickle protocol marker
    assert b"PK\x03\x04" not in raw[:4]  # torch.save zip


def test_optimizer_state_round_trip(tmp_path: Path) -> None:
    model = make_tiny_vae()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.9))
    loss = sum(p.sum() for p in model.parameters())
    loss.backward()
    opt.step()
    ckpt.save_trainer_state(tmp_path, {"vae": opt}, {}, {"step": 7})
    opt2 = torch.optim.Adam(model.parameters(), lr=5.0)
    info = ckpt.load_trainer_state(tmp_path, {"vae": opt2}, {})
    assert info == {"step": 7}
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["lr"] == 1e-3 and tuple(s2["param_groups"][0]["betas"]) == (0.5, 0.9)
    for pid, st in s1["state"].items():
        for k, v in st.items():
            assert torch.equal(v, s2["state"][pid][k])
    with pytest.raises(ValueError, match="optimizers"):
        ckpt.load_trainer_state(tmp_path, {"g": opt2}, {})


def test_config_from_dict_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="where: CGANConfig.loss"):
        ckpt.config_from_dict(CGANConfig, {"loss": "wasserstein"}, "where")
