"""Feature extractors from model hubs: any torchvision or timm classifier by name, without its head.

Weights load for real (torch hub cache, or the network); offline without the file they
fail with a ValueError that says where the file should go. Registered as ``torchvision``
and ``timm`` in ``FEATURES``; ``create_extractor("torchvision:inception_v3")`` builds one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from augmentgen.checks.features import IMAGENET_MEAN, IMAGENET_STD, _ModuleExtractor, _prepare
from augmentgen.core.registry import FEATURES


def _strip_head(model: nn.Module) -> nn.Module:
    for attr in ("fc", "classifier", "heads", "head"):
        if isinstance(getattr(model, attr, None), nn.Module):
            setattr(model, attr, nn.Identity())
            return model
    raise ValueError(
        f"cannot find the classification head of {type(model).__name__} (fc/classifier/heads/head)"
    )


@FEATURES.register("torchvision")
class TorchvisionFeatures(_ModuleExtractor):
    """A torchvision classification model without its head (e.g. ``inception_v3``: 2048-d pool features).

    Args:
        model: torchvision model name.
        weights: weights enum name ("DEFAULT", "IMAGENET1K_V1"), or None for random init
            (tests only: random features are no metric).
        image_size: input side; defaults to the weights' crop size (299 for Inception-v3).

    Loading goes through the torch hub cache; without network and without the file there
    it raises a ValueError that says where the file should go.
    """

    def __init__(self, *, model: str, weights: str | None = "DEFAULT", image_size: int | None = None) -> None:
        import torchvision

        try:
            w = torchvision.models.get_model_weights(model)[weights] if weights is not None else None
        except (ValueError, KeyError) as e:
            raise ValueError(f"torchvision model '{model}' with weights {weights!r}: {e}") from e
        try:
            kwargs: dict[str, Any] = (
                {"aux_logits": True, "init_weights": False} if model == "inception_v3" else {}
            )
            net = torchvision.models.get_model(model, weights=w, **kwargs)
        except (OSError, RuntimeError) as e:  # URLError is an OSError
            raise ValueError(
                f"torchvision model '{model}': weights {w} are not in {torch.hub.get_dir()}/checkpoints "
                f"and could not be downloaded ({type(e).__name__}: {e}); copy {getattr(w, 'url', '?')} there, "
                "or use features='effnet_lite0', which ships offline"
            ) from e
        super().__init__(_strip_head(net))
        tf = w.transforms() if w is not None else None
        self.image_size = image_size or (int(tf.crop_size[0]) if tf is not None else 224)
        self.mean = tuple(tf.mean) if tf is not None else IMAGENET_MEAN
        self.std = tuple(tf.std) if tf is not None else IMAGENET_STD
        self.name = model
        self.weights = str(w) if w is not None else "random"
        self.label = f"{model} ({self.weights})" if w is not None else f"{model} (random init)"

    def fingerprint(self) -> str:
        return f"torchvision-{self.name}-{self.weights}-{self.image_size}"

    def forward(self, x: Tensor) -> Tensor:
        out = self.module(_prepare(x, self.image_size, self.mean, self.std))
        feats: Tensor = out.logits if hasattr(out, "logits") else out
        return feats.flatten(1)


@FEATURES.register("timm")
class TimmFeatures(_ModuleExtractor):
    """A timm model by name with ``num_classes=0`` (pooled features); needs ``pip install timm``.

    Args:
        model: timm model name, e.g. ``"inception_v3.tv_in1k"``.
        pretrained: load the pretrained weights (from the hub cache or the network).
    """

    def __init__(self, *, model: str, pretrained: bool = True) -> None:
        try:
            import timm
        except ImportError as e:
            raise ValueError(f"features 'timm:{model}' need `pip install timm`") from e
        try:
            net = timm.create_model(model, pretrained=pretrained, num_classes=0)
        except (OSError, RuntimeError) as e:
            raise ValueError(
                f"timm model '{model}': pretrained weights are not cached and could not be downloaded "
                f"({type(e).__name__}: {e}); use features='effnet_lite0' offline"
            ) from e
        super().__init__(net)
        cfg = timm.data.resolve_data_config({}, model=net)
        self.image_size = int(cfg["input_size"][-1])
        self.mean, self.std = tuple(cfg["mean"]), tuple(cfg["std"])
        self.name = model
        self.label = model
        self.pretrained = pretrained

    def fingerprint(self) -> str:
        return f"timm-{self.name}-{self.pretrained}-{self.image_size}"

    def forward(self, x: Tensor) -> Tensor:
        return self.module(_prepare(x, self.image_size, self.mean, self.std)).flatten(1)  # type: ignore[no-any-return]
