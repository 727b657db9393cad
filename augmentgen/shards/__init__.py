"""Streaming synthetic shards: deterministic, resumable WebDataset tars, written by one process or many.

Shard ``i`` of a recipe is a pure function of ``(recipe, seed, i)``; see ``distribute`` for
scale-out, ``writer`` for the encode pipeline, ``manifest`` for resume, ``reader`` and
``verify`` for reading back, ``mixing`` for real and synthetic samples in one stream.
"""

from augmentgen.shards.build import build_source
from augmentgen.shards.commit import DiskFullError, ShardRecord
from augmentgen.shards.config import (
    DatasetSourceConfig,
    GenerateRecipe,
    GeneratorSourceConfig,
    RunConfig,
    ShardsConfig,
    load_recipe,
    recipe_from_dict,
)
from augmentgen.shards.distribute import GenerateResult, ProgressHook, write_shards
from augmentgen.shards.manifest import Manifest, ShardEntry, read_manifest
from augmentgen.shards.mixing import MixedDataset, mix
from augmentgen.shards.reader import ShardDataset, collate, decode_sample, load
from augmentgen.shards.sources import DatasetSource, GeneratorSource, ShardSource, ShardTask
from augmentgen.shards.verify import Fault, VerifyReport, verify_shards
from augmentgen.shards.writer import ShardWriter

__all__ = [
    "DatasetSource",
    "DatasetSourceConfig",
    "DiskFullError",
    "Fault",
    "GenerateRecipe",
    "GenerateResult",
    "GeneratorSource",
    "GeneratorSourceConfig",
    "Manifest",
    "MixedDataset",
    "ProgressHook",
    "RunConfig",
    "ShardDataset",
    "ShardEntry",
    "ShardRecord",
    "ShardSource",
    "ShardTask",
    "ShardWriter",
    "ShardsConfig",
    "VerifyReport",
    "build_source",
    "collate",
    "decode_sample",
    "load",
    "load_recipe",
    "mix",
    "read_manifest",
    "recipe_from_dict",
    "verify_shards",
    "write_shards",
]
