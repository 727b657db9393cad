"""Detection recipes (``kind: detection``): a COCO/YOLO set through weather + geometry into shards, checked, exported.

The run writes, under its folder:

- ``shards/``: WebDataset tars with ``image``, ``boxes.json`` (``[x0, y0, x1, y1, category_id]``
  rows), ``mask.png`` (instance ids, ``k + 1`` = row ``k``) and provenance ``json``, plus
  ``categories.json``;
- ``checks/boxes.json``: box validity over every sample (inside the canvas, non-empty,
  finite, known category, mask ids matching rows), gated on ``checks.max_invalid_boxes``;
- ``checks/grid-<condition>.png``: per weather/lighting condition (and ``clear``), a grid of
  samples with their boxes and category names drawn;
- ``export/coco`` and/or ``export/yolo``;
- ``report.json``: what was written, the check results and where everything is.

The optional image-to-image weather generator (``generator:``, disabled by default) is
``generators.weather_edit.WeatherEdit`` (diffusers SDEdit at low strength, same size, so
the boxes stay valid), loaded with ``from_pretrained(path, edit=..., **options)`` and put
into the pipeline as a leaf at position ``at`` (0: before the geometry, on the source
image). Any class with that ``from_pretrained`` returning a pipeline leaf works.

Example:
    >>> r = load_detection_recipe("recipes/driving-weather.yaml")  # doctest: +SKIP
    >>> run_detection_recipe(r, "runs/driving-weather").passed  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from augmentgen.core.config_errors import format_validation_error
from augmentgen.shards.config import DetectionSourceConfig, GenerateRecipe, RunConfig, ShardsConfig

logger = logging.getLogger(__name__)

CONDITIONS = (
    "fog",
    "rain",
    "snow",
    "sun_flare",
    "shadow",
    "night",
    "lens_droplets",
    "jpeg",
    "sensor_noise",
    "motion_blur",
    "weather_edit",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DetectionChecks(_Strict):
    """Box validity and per-condition sample grids."""

    enabled: bool = True
    max_invalid_boxes: int = Field(default=0, ge=0, description="gate: boxes that fail validity")
    grids: bool = Field(default=True, description="write a sample grid per condition with boxes drawn")
    per_grid: int = Field(default=8, ge=1, le=64, description="samples per grid")
    conditions: list[str] | None = Field(
        default=None, description="op names that define a condition (default: the weather and lighting ops)"
    )


class ExportSpec(_Strict):
    """Which detection formats the run writes from its shards."""

    coco: bool = True
    yolo: bool = False


class WeatherGeneratorSpec(_Strict):
    """An image-to-image weather editor put into the pipeline (see the module docstring)."""

    enabled: bool = False
    target: str = Field(default="augmentgen.generators.weather_edit:WeatherEdit", pattern=r"^[\w.]+:[\w.]+$")
    path: str | None = Field(default=None, description="diffusers pipeline: folder or hub id")
    at: int = Field(default=0, ge=0, description="position in pipeline.transforms (0: before the geometry)")
    edit: dict[str, Any] = Field(
        default_factory=dict, description="WeatherEditConfig fields: conditions, prompts, strength, p, scene"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="from_pretrained options: steps, guidance_scale, device, dtype"
    )


class DetectionRecipe(_Strict):
    """A detection recipe: source, pipeline, optional weather generator, shards, checks, export."""

    kind: Literal["detection"] = "detection"
    name: str = Field(default="detection", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    source: DetectionSourceConfig
    pipeline: dict[str, Any] | list[Any] | None = None
    generator: WeatherGeneratorSpec = Field(default_factory=lambda: WeatherGeneratorSpec())
    shards: ShardsConfig
    checks: DetectionChecks = Field(default_factory=lambda: DetectionChecks())
    export: ExportSpec = Field(default_factory=lambda: ExportSpec())
    run: RunConfig = Field(default_factory=lambda: RunConfig())

    def generate_recipe(self) -> GenerateRecipe:
        """The shard-writing part as the shards module's recipe (pipeline validated there)."""
        return GenerateRecipe.model_validate(
            {"shards": self.shards, "source": self.source, "pipeline": self.pipeline, "run": self.run}
        )


def is_detection_recipe(path: str | Path) -> bool:
    """Whether a recipe file says ``kind: detection`` at the top level (cheap, no validation)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and data.get("kind") == "detection"


def load_detection_recipe(path: str | Path, overrides: Sequence[str] | None = None) -> DetectionRecipe:
    """Read and validate a detection recipe; ``--set a.b=value`` overrides; errors name the field."""
    from augmentgen.generators.config import apply_overrides

    p = Path(path)
    try:
        text = p.read_text()
        data, root = yaml.safe_load(text), yaml.compose(text)
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"recipe {p}: cannot read: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"recipe {p}: a recipe is a mapping of sections")
    try:
        data = apply_overrides(data, list(overrides or []))
    except ValueError as e:
        raise ValueError(f"{p}: bad --set: {e}") from e
    try:
        recipe = DetectionRecipe.model_validate(data)
        recipe.generate_recipe()
        from augmentgen.pipeline import Pipeline

        if recipe.pipeline is not None:
            Pipeline.from_dict(recipe.pipeline, where=f"{p}: pipeline")
    except ValidationError as e:
        raise ValueError(
            format_validation_error(e, str(p), DetectionRecipe, root, list(overrides or []), "invalid detection recipe")
        ) from None
    return recipe


def _with_editor(spec: WeatherGeneratorSpec, pipeline: dict[str, Any] | list[Any] | None) -> Any:
    """The recipe's pipeline with the loaded weather editor inserted at ``spec.at``."""
    from augmentgen.pipeline import Pipeline
    from augmentgen.shards.build import import_target

    if spec.path is None:
        raise ValueError("generator.enabled needs generator.path (a diffusers pipeline folder or hub id)")
    cls = import_target(spec.target, "generator.target")
    editor = cls.from_pretrained(spec.path, edit=spec.edit, **spec.options)
    base = Pipeline.from_dict(pipeline if pipeline is not None else [], where="recipe: pipeline")
    stages = list(base.transforms)
    if spec.at > len(stages):
        raise ValueError(
            f"generator.at={spec.at} is past the end of pipeline.transforms ({len(stages)} stages)"
        )
    stages.insert(spec.at, editor)
    return Pipeline(stages, fuse=base.fuse, box_policy=base.box_policy)


@dataclass
class DetectionRunResult:
    """Where the run wrote, and whether its gates passed."""

    out: Path
    report: Path
    passed: bool


def run_detection_recipe(
    recipe: DetectionRecipe, out: str | Path, *, console: Any = None
) -> DetectionRunResult:
    """Write shards (resuming), check them, draw the grids, export; returns the report path and gate result."""
    from augmentgen.recipes.detection_checks import box_validity, condition_grids
    from augmentgen.shards import write_shards
    from augmentgen.shards.build import build_source
    from augmentgen.shards.export import export_coco, export_yolo

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    gen = recipe.generate_recipe()
    source = build_source(gen)
    if recipe.generator.enabled:
        source.pipeline = _with_editor(recipe.generator, recipe.pipeline)  # type: ignore[attr-defined]
    shard_dir = root / "shards"
    result = write_shards(gen, shard_dir, resume=True, source=source)
    if result.failed:
        raise ValueError(f"shards failed: {result.failed}")
    cats = source.describe().get("categories", {})
    (shard_dir / "categories.json").write_text(json.dumps(cats, indent=1) + "\n")
    if console is not None:
        console.print(f"shards: {len(result.written)} written, {len(result.skipped)} already done")
    report: dict[str, Any] = {"name": recipe.name, "shards": str(shard_dir), "samples": result.samples}
    passed = True
    if recipe.checks.enabled:
        boxes = box_validity(shard_dir, {int(k) for k in cats})
        boxes["passed"] = boxes["invalid"] <= recipe.checks.max_invalid_boxes
        passed = passed and boxes["passed"]
        (root / "checks").mkdir(exist_ok=True)
        (root / "checks" / "boxes.json").write_text(json.dumps(boxes, indent=1) + "\n")
        report["boxes"] = {k: v for k, v in boxes.items() if k != "faults"}
        if recipe.checks.grids:
            names = {int(k): v for k, v in cats.items()}
            conds = recipe.checks.conditions or list(CONDITIONS)
            report["grids"] = condition_grids(
                shard_dir, root / "checks", conds, names, recipe.checks.per_grid
            )
    exports = {}
    if recipe.export.coco:
        exports["coco"] = str(export_coco(shard_dir, root / "export" / "coco").out)
    if recipe.export.yolo:
        exports["yolo"] = str(export_yolo(shard_dir, root / "export" / "yolo").out)
    report["export"] = exports
    report["passed"] = passed
    path = root / "report.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    return DetectionRunResult(root, path, passed)
