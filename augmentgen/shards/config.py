"""What `augmentgen generate` reads: the shard layout, the sample source, the pipeline and run options.

The models reject unknown keys, so a later recipes module composes them as they are. Only
``shards``, ``source`` and ``pipeline`` decide the bytes written; ``run`` (workers,
distributor, threads, retries) never does, so it is left out of the recipe hash and one
output folder can be finished with any of them.

Example recipe (a fuller one is ``recipes/shards-fashion-mnist.yaml``)::

    shards: {name: digits, count: 8, size: 500, format: png, seed: 0}
    source: {kind: dataset, name: digits, split: train}
    pipeline:
      transforms:
        - {name: rotate, degrees: [-15, 15]}
    run: {workers: 2}
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from augmentgen.core.config_errors import format_validation_error

logger = logging.getLogger(__name__)

FORMATS = ("png", "jpg", "webp", "npy")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShardsConfig(_Strict):
    """Layout of the output: every field changes the bytes written.

    Args:
        name: file stem, shards are ``{name}-{i:06d}.tar``.
        count: number of shards.
        size: samples per shard (fewer when a generator returns NaN or out-of-range rows, which are counted).
        format: image member encoding: ``png`` | ``jpg`` | ``webp`` | ``npy`` (raw uint8 HWC array).
        seed: base seed; shard ``i`` draws from ``derive_seed(seed, "shard", i)``.
        batch_size: samples per source call; shards are cut into batches of this size.
        quality: JPEG / WebP quality, 1..100.
        png_compression: zlib level 0..9, or None for OpenCV's default (fast, see benchmarks/shards.py).
        jpeg_encoder: ``opencv`` on the CPU pool, or ``torchvision`` (``torchvision.io.encode_jpeg``,
            on the GPU when the batch is on CUDA).

    Example:
        >>> ShardsConfig(count=4, size=100).format
        'png'
    """

    name: str = Field(default="synthetic", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    count: int = Field(ge=1)
    size: int = Field(default=1000, ge=1)
    format: Literal["png", "jpg", "webp", "npy"] = "png"
    seed: int = 0
    batch_size: int = Field(default=256, ge=1)
    quality: int = Field(default=95, ge=1, le=100)
    png_compression: int | None = Field(default=None, ge=0, le=9)
    jpeg_encoder: Literal["opencv", "torchvision"] = "opencv"

    def file_name(self, index: int) -> str:
        return f"{self.name}-{index:06d}.tar"


class RunConfig(_Strict):
    """How to run; none of these fields changes the bytes written.

    Args:
        workers: local processes (``local``) or tasks in flight (``ray``; 0 or 1 means one per cluster
            CPU). 0 (the default) means one process per usable core, forked from this one, when the
            source runs on the CPU; a source on a GPU, or a torchrun rank, stays in its process
            and encodes on threads.
        distributor: ``local`` (this process, or a process pool when workers > 1), ``ray`` (one
            Ray task per shard) or ``torchrun`` (``RANK``/``WORLD_SIZE`` pick the shards of this rank).
        threads: encode threads per process; 0 means usable cores divided by workers (1 per Ray task).
            With one thread a process draws, encodes and writes inline, with no hand-offs.
        retries: extra attempts for a shard that raised, before it is reported as failed.
        queue: encode chunks in flight per process (bounds memory); 0 means 4 per thread.
    """

    workers: int = Field(default=0, ge=0)
    distributor: Literal["local", "ray", "torchrun"] = "local"
    threads: int = Field(default=0, ge=0)
    retries: int = Field(default=2, ge=0)
    queue: int = Field(default=0, ge=0)


def _one_of(name: str | None, target: str | None, where: str) -> None:
    if (name is None) == (target is None):
        raise ValueError(
            f"{where}: give exactly one of 'name' and 'target', got name={name!r} target={target!r}"
        )
    if target is not None and ":" not in target:
        raise ValueError(f"{where}.target must look like 'package.module:attribute', got {target!r}")


class GeneratorSourceConfig(_Strict):
    """Samples from a ``SampleGenerator`` conditioned on labels, then the optional pipeline.

    Args:
        name: registry name of the generator class (``core.GENERATORS``), or
        target: ``"package.module:Class"`` of a class with ``from_pretrained``; with neither, the
            ``kind`` in ``path/config.json`` names it (augmentgen checkpoints).
        path: the folder (or hub id) given to ``from_pretrained``.
        device: where the generator runs (``cpu``, ``cuda``, ``cuda:1``).
        classes: the number of classes (ids ``0..n-1``) or the list of class ids to generate.
        labels: ``cycle`` gives sample ``g`` the class ``classes[g % len(classes)]`` (exact balance);
            ``random`` draws it from the batch seed.
        options: keyword arguments for ``from_pretrained``.
    """

    kind: Literal["generator"] = "generator"
    name: str | None = None
    target: str | None = None
    path: str
    device: str = "cpu"
    classes: int | list[int]
    labels: Literal["cycle", "random"] = "cycle"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> GeneratorSourceConfig:
        if self.name is not None or self.target is not None:
            _one_of(self.name, self.target, "source")
        ids = self.class_ids()
        if not ids or min(ids) < 0:
            raise ValueError(
                f"source.classes must be a positive count or non-negative ids, got {self.classes!r}"
            )
        return self

    def class_ids(self) -> list[int]:
        return list(range(self.classes)) if isinstance(self.classes, int) else list(self.classes)


class DatasetSourceConfig(_Strict):
    """Samples of a real data set, then the pipeline.

    Args:
        name: ``fashion_mnist`` | ``digits`` | ``image_folder`` (``augmentgen.data``), or
        target: ``"package.module:function"`` returning an ``ArrayDataset``-like object
            (``images`` uint8 ``[N, H, W, C]``, ``labels`` ``[N]``, ``name``).
        split: ``train`` / ``test`` (``all`` for digits).
        path: root folder for ``fashion_mnist`` or ``image_folder``.
        order: ``shuffle`` visits a seeded permutation per pass; ``sequential`` goes 0, 1, 2, ...
        device: where the pipeline runs.
        options: keyword arguments for ``target``.
    """

    kind: Literal["dataset"] = "dataset"
    name: Literal["fashion_mnist", "digits", "image_folder"] | None = None
    target: str | None = None
    split: Literal["train", "test", "all"] = "train"
    path: str | None = None
    order: Literal["shuffle", "sequential"] = "shuffle"
    device: str = "cpu"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> DatasetSourceConfig:
        _one_of(self.name, self.target, "source")
        if self.name == "image_folder" and self.path is None:
            raise ValueError("source: name 'image_folder' needs 'path'")
        return self


class DetectionSourceConfig(_Strict):
    """A detection set (``augmentgen.data.detection``), every image resized to ``size``, then the pipeline.

    Args:
        format: ``coco`` (path = the annotations JSON), ``yolo`` (path = the root with
            images/ and labels/) or ``masks`` (path = the image folder; ``options.masks`` the mask folder).
        path: see ``format``.
        size: (H, W) every image is resized to; boxes and masks follow.
        order: ``shuffle`` visits a seeded permutation per pass; ``sequential`` goes 0, 1, 2, ...
        device: where the pipeline runs.
        options: keyword arguments for the reader (``images``, ``tolerance``, ``names``, ...).
    """

    kind: Literal["detection"] = "detection"
    format: Literal["coco", "yolo", "masks"]
    path: str
    size: tuple[int, int]
    order: Literal["shuffle", "sequential"] = "shuffle"
    device: str = "cpu"
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("size")
    @classmethod
    def _size(cls, v: tuple[int, int]) -> tuple[int, int]:
        if min(v) < 1:
            raise ValueError(f"size must be a positive (H, W), got {v}")
        return v


SourceConfig = Annotated[
    Union[GeneratorSourceConfig, DatasetSourceConfig, DetectionSourceConfig], Field(discriminator="kind")
]


class GenerateRecipe(_Strict):
    """Everything `augmentgen generate` needs: shard layout, source, pipeline, run options.

    Args:
        pipeline: a ``Pipeline.from_dict`` mapping or list of stages, applied to every source batch.

    Example:
        >>> r = GenerateRecipe.model_validate(
        ...     {"shards": {"count": 2, "size": 10}, "source": {"kind": "dataset", "name": "digits"}})
        >>> len(r.sha256())
        64
    """

    shards: ShardsConfig
    source: SourceConfig
    pipeline: dict[str, Any] | list[Any] | None = None
    run: RunConfig = Field(default_factory=RunConfig)

    @field_validator("pipeline")
    @classmethod
    def _pipeline(cls, v: Any) -> Any:
        if isinstance(v, dict) and "transforms" not in v:
            raise ValueError(f"pipeline mapping needs a 'transforms' list, got keys {sorted(v)}")
        return v

    def output_dict(self) -> dict[str, Any]:
        """The resolved recipe without ``run``: what decides the bytes, as JSON types."""
        return self.model_dump(mode="json", exclude={"run"})

    def sha256(self, extra: dict[str, Any] | None = None) -> str:
        """Hash of ``output_dict`` (plus ``extra``, e.g. the weights hash), canonical JSON."""
        payload = {"recipe": self.output_dict(), "extra": extra or {}}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


SECTIONS = ("shards", "source", "pipeline", "run")


def recipe_from_dict(
    data: Any, where: str = "recipe", root: yaml.Node | None = None, overrides: Sequence[str] = ()
) -> GenerateRecipe:
    """Validate a recipe mapping; sections other than ``shards``/``source``/``pipeline``/``run`` are left to others.

    Errors name ``where``, the dotted path of each bad field and, given the composed YAML ``root``, its line.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping with 'shards' and 'source', got {type(data).__name__}")
    missing = [k for k in ("shards", "source") if k not in data]
    if missing:
        raise ValueError(f"{where}: missing section(s) {missing}; found {sorted(data)}")
    other = sorted(set(data) - set(SECTIONS))
    if other:
        logger.info("%s: sections %s are not used by generate", where, other)
    body = {k: v for k, v in data.items() if k in SECTIONS}
    try:
        return GenerateRecipe.model_validate(body)
    except ValidationError as e:
        raise ValueError(format_validation_error(e, where, GenerateRecipe, root, overrides)) from None


def load_recipe(path: str | Path, overrides: Sequence[str] | None = None) -> GenerateRecipe:
    """Read a recipe YAML file (see the module docstring), with ``--set a.b=value`` overrides.

    Values are parsed as YAML, then typed by the schema, as ``augmentgen run --set`` does.

    Example:
        >>> load_recipe("recipes/shards-fashion-mnist.yaml", ["shards.count=2"]).shards.count  # doctest: +SKIP
        2
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"recipe file not found: {p}")
    try:
        text = p.read_text()
        data, root = yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML: {e}") from e
    if overrides:
        if not isinstance(data, dict):
            raise ValueError(f"{p}: expected a mapping with 'shards' and 'source', got {type(data).__name__}")
        from augmentgen.generators.config import apply_overrides

        try:
            data = apply_overrides(data, list(overrides))
        except ValueError as e:
            raise ValueError(f"{p}: bad --set: {e}") from e
    return recipe_from_dict(data, where=str(p), root=root, overrides=list(overrides or []))
