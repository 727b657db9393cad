"""Disk cache of features keyed by (data hash, extractor fingerprint), one safetensors file per entry.

Files appear under their final name only when whole (written to ``.tmp`` and renamed), so
a crash never leaves a truncated entry that later reads as a hit.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$AUGMENTGEN_CACHE/features`` or ``~/.cache/augmentgen/features``."""
    root = os.environ.get("AUGMENTGEN_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "augmentgen") / "features"


class FeatureCache:
    """A folder of cached feature matrices.

    Args:
        directory: where the ``.safetensors`` files live (created on first save).

    Example:
        >>> import tempfile
        >>> c = FeatureCache(tempfile.mkdtemp())
        >>> c.save("abc", "effnet_lite0-224", torch.ones(2, 3))
        >>> c.load("abc", "effnet_lite0-224").shape
        torch.Size([2, 3])
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, data_key: str, extractor_key: str) -> Path:
        ext = hashlib.sha256(extractor_key.encode()).hexdigest()[:12]
        safe = "".join(ch if ch.isalnum() else "_" for ch in extractor_key.split("-")[0])[:32]
        return self.directory / f"{safe}-{ext}-{data_key}.safetensors"

    def load(self, data_key: str, extractor_key: str) -> Tensor | None:
        p = self.path(data_key, extractor_key)
        if not p.is_file():
            return None
        try:
            t = load_file(str(p))
        except (SafetensorError, OSError) as e:
            logger.warning("feature cache entry %s is unreadable (%s); recomputing", p, e)
            return None
        if t.get("__key__") is None or bytes(t["__key__"].tolist()).decode() != extractor_key:
            logger.warning("feature cache entry %s belongs to another extractor; recomputing", p)
            return None
        logger.info("features from cache %s", p)
        return t["features"]

    def save(self, data_key: str, extractor_key: str, features: Tensor) -> None:
        p = self.path(data_key, extractor_key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f"{p.name}.{os.getpid()}.tmp")
        key = torch.tensor(list(extractor_key.encode()), dtype=torch.uint8)
        save_file({"features": features.contiguous().cpu(), "__key__": key}, str(tmp))
        os.replace(tmp, p)
