"""``train_generator``: the generator's initial weights follow ``train.seed`` (ensembles differ from the start)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from augmentgen.data import load_digits
from augmentgen.eval import train_job
from augmentgen.generators import ConditionalVAE, CVAEConfig
from augmentgen.generators.config import GeneratorSpec

MODEL = {"width": 4, "latent_dim": 2, "embed_dim": 2, "hidden": 8}


def _first_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seed: int) -> dict[str, torch.Tensor]:
    """The CVAE's weights as ``train_generator`` built them, before its first step."""
    seen: dict[str, torch.Tensor] = {}
    real_from_config = ConditionalVAE.from_config

    def spy(data: dict[str, Any], where: str = "model", **kw: Any) -> ConditionalVAE:
        model = real_from_config(data, where, **kw)
        seen.update({k: v.clone() for k, v in model.state_dict().items()})
        return model

    train = load_digits("train")
    spec = GeneratorSpec.model_validate(
        {
            "name": "v",
            "kind": "cvae",
            "model": MODEL,
            "train": {"steps": 1, "batch_size": 8, "seed": seed, "sample_every": 0, "checkpoint_every": 1},
        }
    )
    with monkeypatch.context() as m:
        m.setattr(ConditionalVAE, "from_config", spy)
        train_job.train_generator(spec, train, out_dir=tmp_path / f"s{seed}", classify=None)
    return seen


def test_train_seed_seeds_the_initial_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s0 = _first_weights(monkeypatch, tmp_path, 0)
    s1 = _first_weights(monkeypatch, tmp_path, 1)
    default = ConditionalVAE(CVAEConfig(num_classes=10, channels=1, image_size=8, **MODEL)).state_dict()
    assert [k for k in default if not torch.equal(s0[k], default[k])] == []  # seed 0: the default draw
    moved = [k for k in s0 if s0[k].is_floating_point() and not torch.equal(s0[k], s1[k])]
    assert any(k.endswith("weight") for k in moved)


def _ensemble(members: int, **train: Any) -> GeneratorSpec:
    """A tiny CVAE ensemble's spec; ``train`` overrides the training settings."""
    return GeneratorSpec.model_validate(
        {
            "name": "v",
            "kind": "cvae",
            "ensemble": members,
            "model": MODEL,
            "train": {"batch_size": 8, "sample_every": 0, **train},
        }
    )


def test_ensemble_trains_members_with_successive_seeds_and_resumes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from augmentgen.generators import GeneratorEnsemble, load_generator

    train = load_digits("train")
    spec = _ensemble(2, steps=2, seed=5, checkpoint_every=1)
    ens, fig = train_job.train_generator(spec, train, out_dir=tmp_path, classify=None, resume=True, workers=1)
    assert isinstance(ens, GeneratorEnsemble) and fig["ensemble"] == 2 and fig["steps"] == 4
    for k, seed in ((0, 5), (1, 6)):
        meta = load_generator(tmp_path / "members" / str(k) / "model")
        assert (tmp_path / "members" / str(k) / "done.json").is_file() and meta is not None
        cfg = (tmp_path / "members" / str(k) / "model" / "config.json").read_text()
        assert f'"seed": {seed}' in cfg
    back = load_generator(tmp_path / "model")
    x = back.generate([0, 1, 2], 3, torch.Generator().manual_seed(0)).image
    assert torch.equal(x, ens.generate([0, 1, 2], 3, torch.Generator().manual_seed(0)).image)
    # a kill after member 0: member 1 and the ensemble folder are gone; the rerun trains member 1 only
    import shutil

    shutil.rmtree(tmp_path / "members" / "1")
    shutil.rmtree(tmp_path / "model")
    trained: list[int] = []
    real_train = train_job.train_generator

    def spy(s: GeneratorSpec, *a: Any, **kw: Any) -> Any:
        trained.append(s.train.seed)
        return real_train(s, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(train_job, "train_generator", spy)
        ens2, _ = train_job._train_ensemble(
            spec, train, out_dir=tmp_path, classify=None, progress=False, resume=True, workers=1
        )
    assert trained == [6]
    y = ens2.generate([0, 1, 2], 3, torch.Generator().manual_seed(0)).image
    assert torch.equal(x, y)  # the retrained member is the same function of its seed


def _weights(folder: Path) -> dict[str, bytes]:
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).digest()
        for p in sorted(folder.rglob("*.safetensors"))
    }


def test_ensemble_members_in_forked_processes_are_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three members on two processes: the same weights as one after another, and a rerun after
    a kill trains only the missing member, leaving the others' files untouched."""
    import shutil

    train = load_digits("train")
    spec = _ensemble(3, steps=3, seed=2, checkpoint_every=2, device="cpu")
    used: list[int] = []
    real_run = train_job.run_forked
    monkeypatch.setattr(train_job, "run_forked", lambda job, tasks, n, **kw: used.append(n) or real_run(job, tasks, n, **kw))
    _, fig1 = train_job.train_generator(spec, train, out_dir=tmp_path / "one", classify=None, resume=True, workers=1)
    ens, fig2 = train_job.train_generator(spec, train, out_dir=tmp_path / "two", classify=None, resume=True, workers=2)
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert len(one) >= 4 and one == two  # every member's weights and the ensemble's, byte for byte
    assert fig1["steps"] == fig2["steps"] == 9 and used == [1, 2]  # in this process, then in two forked ones
    # a kill that lost member 2: the rerun trains it alone and rebuilds the same ensemble
    stamp = (tmp_path / "two" / "members" / "0" / "done.json").stat().st_mtime_ns
    shutil.rmtree(tmp_path / "two" / "members" / "2")
    shutil.rmtree(tmp_path / "two" / "model")
    ens2, _ = train_job.train_generator(spec, train, out_dir=tmp_path / "two", classify=None, resume=True, workers=2)
    assert (tmp_path / "two" / "members" / "0" / "done.json").stat().st_mtime_ns == stamp
    assert _weights(tmp_path / "two") == one and used == [1, 2, 1]  # one member left: no fork for it
    x = torch.Generator().manual_seed(0)
    assert torch.equal(ens.generate([0, 5, 9], 3, x).image, ens2.generate([0, 5, 9], 3, torch.Generator().manual_seed(0)).image)
