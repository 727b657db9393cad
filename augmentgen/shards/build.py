"""From a recipe to a ``ShardSource``: load the generator (registry, import path or checkpoint kind) or data set, and the pipeline."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from augmentgen.core.generator import SampleGenerator
from augmentgen.core.registry import GENERATORS
from augmentgen.shards.config import (
    DatasetSourceConfig,
    DetectionSourceConfig,
    GenerateRecipe,
    GeneratorSourceConfig,
)
from augmentgen.shards.sources import DatasetSource, GeneratorSource, ShardSource, build_pipeline

logger = logging.getLogger(__name__)


def import_target(target: str, where: str) -> Any:
    """``"package.module:attr"`` to the object; errors name ``where``."""
    mod_name, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"{where}: cannot import module {mod_name!r} of target {target!r}: {e}") from e
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{where}: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _files_sha256(path: Path) -> str | None:
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        return None
    weights = path / "model.safetensors"
    if weights.is_file():
        return hashlib.sha256(weights.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _load_generator(cfg: GeneratorSourceConfig) -> tuple[SampleGenerator, dict[str, Any]]:
    try:
        importlib.import_module("augmentgen.generators")  # fills the generator registry
    except ImportError:
        logger.debug("augmentgen.generators did not import; only generators registered elsewhere are known")
    if cfg.target is not None:
        cls, name = import_target(cfg.target, "source.target"), cfg.target
    else:
        name = cfg.name or _checkpoint_kind(Path(cfg.path))
        cls = GENERATORS.get(name)
    if not hasattr(cls, "from_pretrained"):
        raise TypeError(f"source: generator {name!r} has no from_pretrained")
    kwargs = dict(cfg.options)
    try:
        takes_device = "device" in inspect.signature(cls.from_pretrained).parameters
    except (TypeError, ValueError):
        takes_device = False
    if takes_device:
        kwargs.setdefault("device", cfg.device)
    gen = cls.from_pretrained(cfg.path, **kwargs)
    if not takes_device and hasattr(gen, "to"):
        gen = gen.to(cfg.device)
    if hasattr(gen, "eval"):
        gen.eval()
    version = getattr(gen, "version", None)
    if version is None:
        from augmentgen import __version__ as version
    info = {"name": name, "version": str(version), "weights_sha256": _files_sha256(Path(cfg.path))}
    return gen, info


def _checkpoint_kind(path: Path) -> str:
    """The ``kind`` in a generator folder's ``config.json`` (augmentgen checkpoints)."""
    cfg = path / "config.json"
    try:
        kind = json.loads(cfg.read_text()).get("kind")
    except (OSError, ValueError) as e:
        raise ValueError(
            f"source: give 'name' or 'target', or a folder with a config.json naming its kind ({cfg}: {e})"
        ) from e
    if not isinstance(kind, str):
        raise ValueError(f"source: {cfg} has no 'kind'; give 'name' or 'target'")
    return kind


def _load_dataset(cfg: DatasetSourceConfig) -> Any:
    if cfg.target is not None:
        ds = import_target(cfg.target, "source.target")(**cfg.options)
    else:
        from augmentgen import data

        if cfg.name == "digits":
            ds = data.load_digits(cfg.split, **cfg.options)
        elif cfg.name == "fashion_mnist":
            ds = data.load_fashion_mnist(cfg.split, cfg.path, **cfg.options)
        else:
            ds = data.load_image_folder(str(cfg.path), **cfg.options)
    for attr in ("images", "labels"):
        if not hasattr(ds, attr):
            raise TypeError(
                f"source: data set {cfg.name or cfg.target} has no '{attr}' (need an ArrayDataset-like)"
            )
    return ds


def build_source(recipe: GenerateRecipe) -> ShardSource:
    """The source a recipe describes, with its pipeline.

    Example:
        >>> from augmentgen.shards.config import recipe_from_dict
        >>> r = recipe_from_dict({"shards": {"count": 1, "size": 4}, "source": {"kind": "dataset", "name": "digits"}})
        >>> build_source(r).describe()["name"]
        'digits/train'
    """
    pipeline = build_pipeline(recipe.pipeline)
    cfg = recipe.source
    if isinstance(cfg, GeneratorSourceConfig):
        gen, info = _load_generator(cfg)
        return GeneratorSource(
            gen, class_ids=cfg.class_ids(), labels=cfg.labels, pipeline=pipeline, device=cfg.device, info=info
        )
    if isinstance(cfg, DetectionSourceConfig):
        from augmentgen.data.detection import load_detection
        from augmentgen.shards.detection_source import DetectionSource

        det = load_detection(cfg.format, cfg.path, **cfg.options)
        return DetectionSource(det, size=cfg.size, order=cfg.order, pipeline=pipeline, device=cfg.device)
    ds = _load_dataset(cfg)
    return DatasetSource(
        np.asarray(ds.images),
        np.asarray(ds.labels),
        name=str(getattr(ds, "name", cfg.name or cfg.target)),
        order=cfg.order,
        pipeline=pipeline,
        device=cfg.device,
    )
