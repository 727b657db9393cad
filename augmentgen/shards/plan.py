"""Before any shard is written: which shards are this process's, which are done, and whether the output may be touched.

``plan_run`` creates the manifest (or checks that an existing one is of the same recipe),
refuses to overwrite anything without ``resume``, removes temporary files of interrupted
runs, and returns the shards still to write.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from augmentgen.shards.config import GenerateRecipe
from augmentgen.shards.manifest import MANIFEST, Manifest, check_same_recipe, shard_key, update_manifest
from augmentgen.shards.sources import ShardSource
from augmentgen.shards.writer import TMP_MARK

logger = logging.getLogger(__name__)


def rank_and_world(distributor: str) -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment; ``(0, 1)`` outside it."""
    env_rank, env_world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if distributor == "torchrun" and (env_rank is None or env_world is None):
        raise ValueError(
            "distributor 'torchrun' needs the RANK and WORLD_SIZE environment variables (run under torchrun)"
        )
    if env_rank is None or env_world is None or distributor == "ray":
        return 0, 1
    try:
        rank, world = int(env_rank), int(env_world)
    except ValueError:
        raise ValueError(f"RANK={env_rank!r} and WORLD_SIZE={env_world!r} must be integers") from None
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} must lie in [0, WORLD_SIZE={world})")
    return rank, world


def _versions(source: dict[str, Any]) -> dict[str, Any]:
    from augmentgen import __version__

    return {
        "augmentgen": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "source": source,
    }


_TMP_RE = re.compile(r"^(?P<name>.+)-(?P<index>\d{6})\.tar" + re.escape(TMP_MARK) + r"\d+$")


def plan_run(
    recipe: GenerateRecipe, out: Path, source: ShardSource, indices: list[int], resume: bool
) -> tuple[list[int], list[int]]:
    """Create or check the manifest of ``out``; return (todo, already done) among ``indices``.

    Example:
        >>> todo, done = plan_run(recipe, Path("out"), source, list(range(8)), resume=True)  # doctest: +SKIP
    """
    desc = source.describe()
    sha = recipe.sha256(desc)
    cfg = recipe.shards

    def init(found: Manifest | None) -> Manifest:
        if found is None:
            return Manifest(
                recipe=recipe.output_dict(), recipe_sha256=sha, versions=_versions(desc), count=cfg.count
            )
        check_same_recipe(found, recipe.output_dict(), sha, out)
        return found

    manifest = update_manifest(out, init)
    mine = set(indices)
    done: list[int] = []
    for i in manifest.done_indices():
        entry = manifest.shards[shard_key(i)]
        path = out / entry.file
        if i not in mine:
            continue
        if path.is_file() and path.stat().st_size == entry.bytes:
            done.append(i)
        else:
            logger.warning(
                "%s is listed as done but is missing or has another size; it is written again", path
            )
    if not resume:
        clash = sorted(set(done) | {i for i in indices if (out / cfg.file_name(i)).exists()})
        if clash:
            raise ValueError(
                f"{out} already holds {len(clash)} shard(s) of this job (e.g. {cfg.file_name(clash[0])}); "
                "pass --resume to finish it, or choose another --out (nothing was overwritten)"
            )
    for p in out.iterdir():
        m = _TMP_RE.match(p.name)
        stale_manifest = p.name.startswith(f".{MANIFEST}.tmp.") and not _alive(p.name.rsplit(".", 1)[-1])
        if (m and m["name"] == cfg.name and int(m["index"]) in mine) or stale_manifest:
            logger.info("removing %s left by an interrupted run", p.name)
            p.unlink(missing_ok=True)
    todo = [i for i in indices if i not in set(done)]
    return todo, sorted(done)


def remove_orphans(out: Path, name: str, indices: list[int]) -> list[str]:
    """Remove the temporary files of ``indices`` whose writing process is gone (a worker that died mid-shard).

    Called when a run ends: a shard retried elsewhere is whole under its own name by then, and
    what the dead worker left must not sit beside it. Files of live processes are kept.
    """
    mine, removed = set(indices), []
    for p in out.iterdir():
        m = _TMP_RE.match(p.name)
        if m and m["name"] == name and int(m["index"]) in mine and not _alive(p.name.rsplit(".", 1)[-1]):
            p.unlink(missing_ok=True)
            removed.append(p.name)
    if removed:
        logger.info("removed %d temporary file(s) of worker processes that died: %s", len(removed), removed)
    return removed


def _alive(pid: str) -> bool:
    """Whether process ``pid`` (text) exists on this machine."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
