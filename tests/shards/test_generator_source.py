"""A real learned generator (a tiny ConditionalGAN saved with save_pretrained) as a shard source, found by its checkpoint kind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from augmentgen.core.rng import torch_rng
from augmentgen.shards.config import RunConfig, recipe_from_dict
from augmentgen.shards.distribute import write_shards
from augmentgen.shards.reader import load
from augmentgen.shards.verify import verify_shards


def test_cgan_checkpoint_writes_replayable_shards(tmp_path: Path) -> None:
    cgan = pytest.importorskip("augmentgen.generators.cgan")
    gan = cgan.ConditionalGAN(
        cgan.CGANConfig(num_classes=3, image_size=8, g_width=8, d_width=8, embed_dim=8, latent_dim=8)
    )
    gan.save_pretrained(tmp_path / "gan")
    recipe = recipe_from_dict(
        {
            "shards": {"name": "gan", "count": 2, "size": 9, "batch_size": 4},
            "source": {"kind": "generator", "path": str(tmp_path / "gan"), "classes": 3},
        }
    )
    res = write_shards(recipe, tmp_path / "out", run=RunConfig(threads=1))
    assert res.written == [0, 1] and res.samples == 18 and verify_shards(tmp_path / "out").ok
    weights = hashlib.sha256((tmp_path / "gan" / "model.safetensors").read_bytes()).hexdigest()
    again = cgan.ConditionalGAN.from_pretrained(tmp_path / "gan")
    for s in load(tmp_path / "out"):
        meta = s["meta"]
        assert meta["generator"]["name"] == "cgan" and meta["generator"]["weights_sha256"] == weights
        first = meta["shard"] * 9 + meta["index"] - meta["row"]
        n = 4 if meta["index"] < 8 else 1
        labels = torch.tensor([(first + r) % 3 for r in range(n)])
        img = again.generate(labels, n, torch_rng(meta["seed"], "generate")).image[meta["row"]]
        expect = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert (s["image"] == expect).all() and s["label"] == meta["condition"]
