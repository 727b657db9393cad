"""Stage bookkeeping for the main job: per-stage hashes and done-markers, so a killed run picks up where it stopped.

A stage's hash covers the recipe sections it reads plus the hashes of the stages it consumes;
changing ``evaluate`` re-runs the evaluation but never retrains a generator. A marker
``RUN/stages/{stage}.json`` is written last, after the stage's outputs are whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from augmentgen.recipes.schema import Recipe

STAGES = ("train", "generate", "verify", "check", "evaluate", "report")
# stages whose outputs are folders that a different recipe must not silently mix with
GUARDED = ("train", "generate")


def _sha(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def stage_hashes(recipe: Recipe) -> dict[str, str]:
    """The hash of every stage of ``recipe``.

    Example:
        >>> sorted(stage_hashes(Recipe.model_validate({"shards": {"count": 1}})))[:2]
        ['check', 'evaluate']
    """
    sections: tuple[str, ...] = ("seed", "data", "classifier", "generators")
    if recipe.text_to_image is not None:  # captions are training data of t2i generators
        sections += ("text_to_image",)
    train = _sha("train", recipe.sha256(sections))
    generate = _sha("generate", train, recipe.sha256(("pipeline", "filters", "shards")))
    check = _sha("check", generate, recipe.sha256(("checks",)))
    evaluate = _sha("evaluate", train, recipe.sha256(("pipeline", "evaluate")))
    return {
        "train": train,
        "generate": generate,
        "verify": _sha("verify", generate),
        "check": check,
        "evaluate": evaluate,
        "report": _sha("report", recipe.sha256()),
    }


def marker_path(out: Path, stage: str) -> Path:
    return out / "stages" / f"{stage}.json"


def read_marker(out: Path, stage: str) -> dict[str, Any] | None:
    """The done-marker of ``stage`` in ``out``, or None when there is none (or it is unreadable)."""
    p = marker_path(out, stage)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_done(out: Path, stage: str, stage_hash: str) -> bool:
    """True when ``stage`` finished in ``out`` for this exact hash."""
    m = read_marker(out, stage)
    return m is not None and m.get("hash") == stage_hash


def check_not_stale(out: Path, stage: str, stage_hash: str) -> None:
    """Refuse to mix outputs of another recipe into a guarded stage's folders (nothing is deleted)."""
    m = read_marker(out, stage)
    if stage in GUARDED and m is not None and m.get("hash") != stage_hash:
        raise ValueError(
            f"{out}: stage '{stage}' was completed for another recipe (hash {str(m.get('hash'))[:12]}, "
            f"this one {stage_hash[:12]}); use another --out, or delete {out} to start over"
        )


def write_marker(out: Path, stage: str, stage_hash: str, recipe_sha256: str, **info: Any) -> None:
    """Write ``stage``'s done-marker atomically (tmp file, then rename)."""
    p = marker_path(out, stage)
    p.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "stage": stage,
        "hash": stage_hash,
        "recipe_sha256": recipe_sha256,
        "finished": time.time(),
        **info,
    }
    tmp = p.with_name(f".{p.name}.tmp.{os.getpid()}")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(p)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (tmp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
