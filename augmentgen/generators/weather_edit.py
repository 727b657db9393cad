"""Learned weather and lighting edits for detection data: diffusers image-to-image that keeps geometry.

WeatherDG (Qian et al. 2024, https://arxiv.org/abs/2409.12395) turns street scenes into rain,
fog, snow and night with LLM-written prompts and a diffusion model. Here each sample draws a
condition, one of that condition's prompts and its own seed; the image goes through an SDEdit
pass (``DiffusersGenerator.edit_images``) at a low strength, so layout survives: the output has
the input's size, and boxes, masks, keypoints and labels pass through untouched. The edit is a
``Transform``: ``sample_params`` then ``apply``, and ``apply`` with the same params replays it.

Prompts come from the built-in templates below, or from any prompt source with
``prompts(condition, n, seed) -> list[str]`` (``TemplatePrompts`` or the LLM-written
``LLMPrompts`` over ``weather_vocab()``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from augmentgen.core.batch import Batch, Sample
from augmentgen.core.params import Params
from augmentgen.core.rng import RNG, Array, bernoulli, randint
from augmentgen.generators.diffusers_backend import DiffusersGenerator
from augmentgen.generators.prompts import ClassVocab

logger = logging.getLogger(__name__)

# "{scene}" is filled from WeatherEditConfig.scene; each names the change and insists on the layout
WEATHER_TEMPLATES: dict[str, tuple[str, ...]] = {
    "rain": (
        "the same {scene} in heavy rain, wet asphalt with reflections, rain streaks, overcast sky",
        "the same {scene} during a rainstorm, puddles on the road, grey light",
    ),
    "fog": (
        "the same {scene} in thick fog, low visibility, soft diffuse light",
        "the same {scene} on a misty morning, haze hiding the distance",
    ),
    "snow": (
        "the same {scene} in heavy snowfall, snow on the road and roofs, cold white light",
        "the same {scene} in winter, covered with fresh snow, falling snowflakes",
    ),
    "night": (
        "the same {scene} at night, dark sky, street lights and headlights glowing",
        "the same {scene} at night in the rain, wet road reflecting lights",
    ),
    "dusk": (
        "the same {scene} at dusk, low orange sun, long shadows",
        "the same {scene} at sunset with glare from the low sun",
    ),
}
WEATHER_NEGATIVE = "different layout, moved objects, extra vehicles, distorted geometry, cartoon, blurry"


def weather_vocab(
    conditions: Sequence[str] = tuple(WEATHER_TEMPLATES), scene: str = "street"
) -> list[ClassVocab]:
    """``ClassVocab`` per condition (description = the first template), for ``LLMPrompts`` or ``TemplatePrompts``.

    Example:
        >>> weather_vocab(["fog"])[0].description
        'the same street in thick fog, low visibility, soft diffuse light'
    """
    out = []
    for c in conditions:
        if c not in WEATHER_TEMPLATES:
            raise ValueError(f"weather_vocab: unknown condition {c!r}; known: {sorted(WEATHER_TEMPLATES)}")
        out.append(ClassVocab(c, WEATHER_TEMPLATES[c][0].format(scene=scene), article=""))
    return out


class PromptSource(Protocol):
    """Anything that writes ``n`` prompts for a condition under a seed (``TemplatePrompts``, ``LLMPrompts``)."""

    def prompts(self, cls: str | int, n: int, seed: int = 0) -> list[str]: ...


@dataclass
class WeatherEditConfig:
    """What a weather edit does.

    Args:
        conditions: conditions drawn uniformly per sample.
        prompts: condition -> prompts, overriding the templates (and the prompt source).
        scene: what the images show; fills ``{scene}`` in the templates.
        strength: SDEdit noise level; low keeps geometry (0.3-0.5 for SD 1.5 at 512 px).
        negative_prompt: steers away from layout changes (used when guidance_scale > 1).
        p: probability that a sample is edited.
        prompts_per_condition: prompts asked from a prompt source per condition.
        prompt_seed: seed of that request.
    """

    conditions: list[str] = field(default_factory=lambda: ["rain", "fog", "snow", "night"])
    prompts: dict[str, list[str]] = field(default_factory=dict)
    scene: str = "street"
    strength: float = 0.35
    negative_prompt: str | None = WEATHER_NEGATIVE
    p: float = 1.0
    prompts_per_condition: int = 8
    prompt_seed: int = 0

    def __post_init__(self) -> None:
        self.conditions = list(self.conditions)
        if not self.conditions or len(set(self.conditions)) != len(self.conditions):
            raise ValueError(
                f"WeatherEditConfig.conditions must be unique and non-empty, got {self.conditions}"
            )
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"WeatherEditConfig.strength must be in [0, 1], got {self.strength}")
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"WeatherEditConfig.p must be in [0, 1], got {self.p}")
        if self.prompts_per_condition < 1:
            raise ValueError(
                f"WeatherEditConfig.prompts_per_condition must be >= 1, got {self.prompts_per_condition}"
            )
        for c, ps in self.prompts.items():
            if isinstance(ps, str) or not ps or not all(isinstance(x, str) and x.strip() for x in ps):
                raise ValueError(
                    f"WeatherEditConfig.prompts[{c!r}] must be a non-empty list of strings, got {ps!r}"
                )


@dataclass(frozen=True)
class WeatherEditParams(Params):
    """Per sample: ``condition`` index, ``prompt`` draw (modulo that condition's prompts), ``seed``."""

    condition: Array
    prompt: Array
    seed: Array


class WeatherEdit:
    """Diffusion weather edit of detection batches that leaves every target where it was.

    Args:
        generator: a ``DiffusersGenerator`` (its steps, guidance, dtype and device are used).
        config: conditions, prompts and strength.
        prompt_source: writes the prompts of conditions the config does not list (None: templates).

    Shape:
        ``[B, C, H, W]`` -> ``[B, C, H, W]``; boxes ``[B, N, 4]``, masks ``[B, K, H, W]`` unchanged.

    Example:
        >>> gen = DiffusersGenerator.from_pretrained("stabilityai/sd-turbo", steps=4, guidance_scale=0)  # doctest: +SKIP
        >>> edit = WeatherEdit(gen, WeatherEditConfig(conditions=["rain", "night"]))  # doctest: +SKIP
        >>> out = edit(batch, torch.Generator().manual_seed(0))  # doctest: +SKIP
        >>> out.boxes is batch.boxes, out.meta["weather"][:2]  # doctest: +SKIP
        (True, ['night', 'rain'])
    """

    kind = "opaque"  # a pipeline leaf that is never fused with neighbours
    registry_name = "weather_edit"

    def __init__(
        self,
        generator: DiffusersGenerator,
        config: WeatherEditConfig | None = None,
        *,
        prompt_source: PromptSource | None = None,
    ) -> None:
        self.generator = generator
        self.config = config or WeatherEditConfig()
        self.p = self.config.p
        self.prompt_table = self._prompt_table(prompt_source)

    def _prompt_table(self, source: PromptSource | None) -> list[list[str]]:
        c, table = self.config, []
        for cond in c.conditions:
            if cond in c.prompts:
                table.append(list(c.prompts[cond]))
            elif source is not None:
                got = [
                    p for p in source.prompts(cond, c.prompts_per_condition, seed=c.prompt_seed) if p.strip()
                ]
                if not got:
                    raise ValueError(f"WeatherEdit: the prompt source wrote no prompt for condition {cond!r}")
                table.append(got)
            elif cond in WEATHER_TEMPLATES:
                table.append([t.format(scene=c.scene) for t in WEATHER_TEMPLATES[cond]])
            else:
                raise ValueError(
                    f"WeatherEdit: condition {cond!r} has no template (known {sorted(WEATHER_TEMPLATES)}); "
                    "give config.prompts for it or a prompt_source"
                )
        return table

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return size

    def prompt_of(self, condition: int, draw: int) -> str:
        options = self.prompt_table[condition]
        return options[int(draw) % len(options)]

    def sample_params(self, batch: Batch | Sample, rng: RNG) -> WeatherEditParams:
        """Draw, per sample, whether to edit, the condition, the prompt and the diffusion seed."""
        n = batch.batch_size
        return WeatherEditParams(
            applied=bernoulli(rng, self.p, n),
            condition=randint(rng, 0, len(self.config.conditions), n),
            prompt=randint(rng, 0, 2**31 - 1, n),
            seed=randint(rng, 0, 2**62, n),
        )

    def apply(self, batch: Batch, params: WeatherEditParams) -> Batch:
        """Edit the applied rows; every other field of the batch passes through as it is."""
        n = batch.batch_size
        applied = _as_list(params.applied, bool)
        cond, draw, seeds = (
            _as_list(params.condition, int),
            _as_list(params.prompt, int),
            _as_list(params.seed, int),
        )
        if not len(applied) == len(cond) == len(seeds) == n:
            raise ValueError(f"WeatherEdit.apply: params are for {len(applied)} samples, the batch has {n}")
        rows = [i for i in range(n) if applied[i]]
        prompts = [self.prompt_of(cond[i], draw[i]) if applied[i] else None for i in range(n)]
        image = batch.image
        if rows:
            idx = torch.tensor(rows, dtype=torch.int64, device=batch.device)
            edited = self.generator.edit_images(
                batch.image[idx], [str(prompts[i]) for i in rows], [seeds[i] for i in rows],
                strength=self.config.strength, negative_prompt=self.config.negative_prompt,
            )  # fmt: skip
            edited = edited.to(batch.device)
            if not image.is_floating_point():
                edited = (edited * 255).round().to(image.dtype)
            image = image.clone()
            image[idx] = edited.to(image.dtype)
        meta = {
            **batch.meta,
            "weather": [self.config.conditions[cond[i]] if applied[i] else None for i in range(n)],
            "prompt": prompts,
            "sample_seed": [seeds[i] if applied[i] else None for i in range(n)],
            "strength": [self.config.strength if applied[i] else None for i in range(n)],
        }
        return batch.replace(image=image, meta=meta)

    def apply_sample(self, sample: Sample, params: WeatherEditParams) -> Sample:
        """The per-sample path: one-row batch through ``apply`` (a diffusion pass dwarfs the conversion)."""
        out = self.apply(sample.to_batch(), params)
        img = out.image[0].permute(1, 2, 0).cpu().numpy()
        meta = {**(sample.meta or {}), **{k: v[0] for k, v in out.meta.items() if isinstance(v, list)}}
        return sample.replace(image=np.ascontiguousarray(img.astype(sample.image.dtype)), meta=meta)

    def __call__(self, batch: Batch, rng: RNG) -> Batch:
        return self.apply(batch, self.sample_params(batch, rng))

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "name": "weather_edit", "pipeline": self.generator.config.pipeline, "conditions": c.conditions,
            "prompts": [list(p) for p in self.prompt_table], "strength": c.strength, "p": c.p,
            "negative_prompt": c.negative_prompt, "steps": self.generator.config.steps,
            "guidance_scale": self.generator.config.guidance_scale,
        }  # fmt: skip

    @classmethod
    def from_pretrained(
        cls,
        pipeline: str,
        *,
        prompt_source: PromptSource | None = None,
        edit: Mapping[str, Any] | None = None,
        **generator_options: Any,
    ) -> WeatherEdit:
        """Load a diffusers pipeline (hub id or folder) and wrap it; ``edit`` holds ``WeatherEditConfig`` fields."""
        gen = DiffusersGenerator.from_pretrained(pipeline, mode="img2img", **generator_options)
        return cls(gen, WeatherEditConfig(**dict(edit or {})), prompt_source=prompt_source)


def _as_list(x: Array, kind: type) -> list[Any]:
    if isinstance(x, Tensor):
        return [kind(v) for v in x.detach().cpu().tolist()]
    return [kind(v) for v in np.asarray(x).tolist()]
