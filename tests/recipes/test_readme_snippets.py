"""The README's Python blocks run as written (against stand-ins for the user's own data set)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from augmentgen.recipes.run import RunResult

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_python_blocks_run(tiny_run: RunResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from augmentgen.data import load_digits
    from augmentgen.shards import collate

    dataloader, shards = _python_blocks()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "main").symlink_to(tiny_run.out)  # the block reads runs/main/generators/cgan/model
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    photos = [(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), i % 10) for i in range(96)]
    digits = load_digits("train")
    ns: dict[str, object] = {"my_dataset": photos, "real_dataset": [(digits.images[i], int(digits.labels[i])) for i in range(200)]}
    # the same code with two epochs and two workers (the README trains for 10 on 4)
    assert "range(10)" in dataloader and "num_workers=4" in dataloader
    exec(dataloader.replace("range(10)", "range(2)").replace("num_workers=4", "num_workers=2"), ns)  # noqa: S102
    images, labels, targets = ns["images"], ns["labels"], ns["targets"]
    assert isinstance(images, torch.Tensor) and images.dtype == torch.float32 and images.shape[1:] == (3, 32, 32)
    assert isinstance(labels, torch.Tensor) and labels.shape == (images.shape[0],)
    assert isinstance(targets, torch.Tensor) and targets.shape == (images.shape[0], 10)
    assert torch.allclose(targets.sum(1), torch.ones(len(targets)))
    # every row keeps part of its own label (a CutMix box never covers a whole image)
    assert bool((targets.gather(1, labels[:, None].long()) > 0).all())
    exec(shards, ns)  # noqa: S102
    assert len(list((tmp_path / "shards" / "cgan").glob("*.tar"))) == 6
    mixed = list(ns["mixed"])  # type: ignore[call-overload]
    is_real = [s["meta"].get("source") == "real" for s in mixed]
    assert len(mixed) == 400 and sum(is_real) == 200  # one pass over the real set, exactly half synthetic
    batch = collate(mixed[:64])
    assert batch.image.shape == (64, 1, 8, 8) and Counter(is_real[:64]) == Counter({True: 32, False: 32})
