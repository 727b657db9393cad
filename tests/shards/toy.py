"""Small, fast sources for the shard tests (importable as ``shards.toy`` from subprocesses with tests/ on PYTHONPATH)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from augmentgen.core.batch import Batch
from augmentgen.core.rng import RNG
from augmentgen.data import ArrayDataset
from augmentgen.shards.config import GenerateRecipe, recipe_from_dict

TESTS_DIR = Path(__file__).resolve().parent.parent


def make_recipe(**shards: Any) -> GenerateRecipe:
    """A recipe over ``shards.toy:noise_dataset`` (16 px RGB noise, 4 classes); ``shards`` overrides the layout."""
    layout = {"name": "toy", "count": 4, "size": 20, "batch_size": 8, **shards}
    options = layout.pop("options", {"n": 48, "size": 16})
    return recipe_from_dict(
        {
            "shards": layout,
            "source": {"kind": "dataset", "target": "shards.toy:noise_dataset", "options": options},
        }
    )


def tar_digests(out: Path) -> dict[str, str]:
    """sha256 of every final tar in ``out``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.tar"))}


def noise_dataset(
    n: int = 48, size: int = 16, channels: int = 3, classes: int = 4, seed: int = 0
) -> ArrayDataset:
    """``n`` uniform-noise images (slow to compress, which the kill tests want) with cycling labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
    return ArrayDataset(images, np.arange(n) % classes, [f"c{i}" for i in range(classes)], f"noise{size}")


class ToyGenerator(torch.nn.Module):
    """A tiny label-conditioned generator: embedding + noise -> linear -> sigmoid image.

    ``nan_class`` / ``range_class`` make rows of that class NaN or > 1 (bad generator output).
    """

    def __init__(
        self,
        num_classes: int = 4,
        size: int = 8,
        channels: int = 3,
        *,
        nan_class: int = -1,
        range_class: int = -1,
    ) -> None:
        super().__init__()
        self.config = {
            "num_classes": num_classes,
            "size": size,
            "channels": channels,
            "nan_class": nan_class,
            "range_class": range_class,
        }
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Parameter(torch.randn(num_classes, 8, generator=g))
        self.fc = torch.nn.Parameter(torch.randn(16, channels * size * size, generator=g) * 0.5)

    def generate(self, condition: Tensor | list[Any], n: int, rng: RNG) -> Batch:
        assert isinstance(rng, torch.Generator)
        labels = torch.as_tensor(condition, dtype=torch.int64).reshape(n)
        z = torch.randn(n, 8, generator=rng, device=rng.device)
        c = self.config
        x = torch.sigmoid(torch.cat([self.emb[labels], z], 1) @ self.fc).reshape(
            n, c["channels"], c["size"], c["size"]
        )
        x = torch.where((labels == c["nan_class"]).reshape(-1, 1, 1, 1), torch.full_like(x, float("nan")), x)
        x = torch.where((labels == c["range_class"]).reshape(-1, 1, 1, 1), x + 2.0, x)
        scores = x.detach().flatten(1).mean(1)
        return Batch(image=x, label=labels, meta={"filter_score": [float(s) for s in scores]})

    def save_pretrained(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(self.config))
        save_file(
            {k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(d / "model.safetensors")
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs: Any) -> ToyGenerator:
        d = Path(directory)
        cfg = json.loads((d / "config.json").read_text())
        model = cls(
            cfg["num_classes"],
            cfg["size"],
            cfg["channels"],
            nan_class=cfg["nan_class"],
            range_class=cfg["range_class"],
        )
        model.load_state_dict(load_file(str(d / "model.safetensors")))
        return model
