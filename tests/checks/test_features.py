"""Feature extractors (registry, real EffNet-Lite0 weights, classifier penultimate layer, torchvision) and the disk cache."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from augmentgen.checks.features import (
    ClassifierFeatures,
    EffNetLite0Features,
    PixelFeatures,
    create_extractor,
    data_hash,
    extract_features,
)
from augmentgen.checks.features_hub import TorchvisionFeatures
from augmentgen.core.batch import Batch
from augmentgen.core.registry import FEATURES


def test_registry_lists_every_extractor() -> None:
    assert {"effnet_lite0", "classifier", "pixels", "torchvision", "timm"} <= set(FEATURES.names())


@pytest.fixture(scope="module")
def effnet32() -> EffNetLite0Features:
    return EffNetLite0Features(image_size=32)


def test_effnet_loads_imagenet_weights_and_is_deterministic(effnet32: EffNetLite0Features) -> None:
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    a, b = effnet32(x), effnet32(x.expand(-1, 3, -1, -1))
    assert a.shape == (4, 1280) and torch.isfinite(a).all()
    assert torch.equal(a, b)  # grey is repeated to RGB
    # pretrained, not random: the stem's BN statistics are the shipped ones
    bn = effnet32.module._bn0  # type: ignore[attr-defined]
    assert float(bn.running_var.mean()) != 1.0
    assert effnet32.label == "EffNet-Lite0@32px"
    assert create_extractor("effnet_lite0").label == "EffNet-Lite0"


def test_effnet_batch_independent(effnet32: EffNetLite0Features) -> None:
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    whole = effnet32(x)
    parts = torch.cat([effnet32(x[:2]), effnet32(x[2:])])
    assert torch.allclose(whole, parts, atol=1e-5)


def test_effnet_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        EffNetLite0Features(image_size=50)


def test_effnet_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        EffNetLite0Features(weights_path=tmp_path / "nope.pth")


def test_classifier_penultimate_via_hook_matches_manual(tiny_classifier: nn.Module) -> None:
    ext = ClassifierFeatures(tiny_classifier)
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    feats = ext(x)
    head = [m for m in tiny_classifier.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        logits = tiny_classifier(x)
        # penultimate = exactly what the logits layer reads
        assert torch.allclose(head(feats), logits, atol=1e-5)
    assert feats.shape == (5, ext.dim) and ext.dim == head.in_features
    assert ext(torch.from_numpy(np.zeros((1, 1, 28, 28), np.uint8))).shape == (1, ext.dim)


def test_classifier_features_method_and_fingerprint() -> None:
    class WithFeatures(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :4] * 2

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.features(x))

    m = WithFeatures()
    ext = ClassifierFeatures(m)
    x = torch.rand(3, 1, 2, 2)
    assert torch.equal(ext(x), x.flatten(1) * 2)
    fp = ext.fingerprint()
    with torch.no_grad():
        m.fc.weight.add_(1)
    assert ClassifierFeatures(m).fingerprint() != fp
    with pytest.raises(TypeError, match="final nn.Linear"):
        ClassifierFeatures(nn.Conv2d(1, 1, 1))


def test_pixels() -> None:
    x = torch.rand(2, 3, 64, 64)
    assert PixelFeatures()(x).shape == (2, 3 * 32 * 32)
    assert PixelFeatures(grey=True, max_side=64)(x).shape == (2, 64 * 64)
    small = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    assert torch.equal(PixelFeatures()(small), small.flatten(1).float() / 255)


def test_torchvision_by_name_random_init_runs() -> None:
    ext = create_extractor("torchvision:resnet18", weights=None, image_size=32)
    assert isinstance(ext, TorchvisionFeatures)
    out = ext(torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 512)
    assert "random init" in ext.label


def test_torchvision_offline_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(ValueError, match=r"inception_v3.*not in .*checkpoints.*effnet_lite0"):
        create_extractor("torchvision:inception_v3")


def test_timm_missing_or_offline_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="timm"):
        create_extractor("timm:inception_v3.tv_in1k")


def test_unknown_extractor() -> None:
    with pytest.raises(ValueError, match="unknown feature extractor 'nope'"):
        create_extractor("nope")


class _Counting(PixelFeatures):
    calls = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        return super().__call__(images)


def test_extract_features_batches_inputs_and_caches(tmp_path: Path, real_small) -> None:
    ext = _Counting()
    imgs = real_small.images[:100]  # [N, H, W, C] uint8
    a = extract_features(ext, imgs, batch_size=32, cache_dir=tmp_path)
    assert _Counting.calls == 4 and a.shape == (100, 784) and a.dtype == torch.float32
    b = extract_features(ext, imgs, batch_size=32, cache_dir=tmp_path)
    assert _Counting.calls == 4  # served from disk
    assert torch.equal(a, b)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    batch = Batch(torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255)
    c = extract_features(ext, batch, batch_size=64)
    assert torch.allclose(a, c)
    # other data -> other key
    extract_features(ext, imgs[:50], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


def test_cache_key_tracks_data_and_extractor(tmp_path: Path) -> None:
    x = torch.zeros(2, 1, 4, 4)
    y = x.clone()
    y[0, 0, 0, 0] = 1
    assert data_hash(x) != data_hash(y) and data_hash(x) == data_hash(x.clone())
    extract_features(PixelFeatures(), x, cache_dir=tmp_path)
    extract_features(PixelFeatures(grey=True), x, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


def test_corrupt_cache_entry_is_recomputed(tmp_path: Path) -> None:
    x = torch.rand(3, 1, 4, 4)
    a = extract_features(PixelFeatures(), x, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.safetensors")
    entry.write_bytes(b"garbage")
    assert torch.equal(extract_features(PixelFeatures(), x, cache_dir=tmp_path), a)
