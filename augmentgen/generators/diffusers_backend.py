"""Any diffusers text-to-image pipeline as a ``SampleGenerator``: prompts or labels in, seeded images out.

Text-to-image renders class prompts; image-to-image (SDEdit, Meng et al. 2022,
https://arxiv.org/abs/2108.01073, used as augmentation by DA-Fusion, Trabucco et al. 2023,
https://arxiv.org/abs/2302.07944) edits real images with a strength in [0, 1] and keeps their
label, size, boxes and masks. Every sample gets its own ``torch.Generator`` seeded from
``rng``, so image ``i`` of a batch equals the same prompt and seed rendered alone (diffusers
draws each sample's latents from its own generator) and batch size never changes a picture.

diffusers is imported lazily: this module registers the ``diffusers`` kind without the
~20 s import. Folder layout written by ``save_pretrained``::

    config.json        {"format": "augmentgen", "kind": "diffusers", "config": {...}}
    pipeline/          the diffusers pipeline (model_index.json, unet/, vae/, ...), unless
                       save_pipeline=False, when config.pipeline names the hub id or folder
    references.safetensors   img2img source images and labels, when set
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from augmentgen.core.batch import Batch
from augmentgen.core.registry import GENERATORS
from augmentgen.core.rng import RNG, child_seed, derive_seed
from augmentgen.generators.checkpoint import CONFIG_NAME, FORMAT, VERSION, config_from_dict
from augmentgen.generators.diffusers_pipeline import (
    DiffusersConfig,
    fit_size,
    load_pipeline,
    luma,
    resolve_device,
    to_rgb,
)

logger = logging.getLogger(__name__)

__all__ = ["DiffusersConfig", "DiffusersGenerator", "write_diffusers_folder"]

KIND = "diffusers"
PIPELINE_DIR = "pipeline"
REFERENCES_NAME = "references.safetensors"


def _write_config(directory: Path, config: DiffusersConfig, pipeline: str) -> None:
    cfg = dataclasses.asdict(config)
    cfg["pipeline"] = pipeline  # PIPELINE_DIR is resolved against the folder on load
    cfg["class_prompts"] = {str(k): v for k, v in config.class_prompts.items()}
    body = {"format": FORMAT, "version": VERSION, "kind": KIND, "config": cfg, "meta": {}}
    tmp = directory / (CONFIG_NAME + ".tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    tmp.replace(directory / CONFIG_NAME)


def _save_references(directory: Path, references: Batch) -> None:
    if references.label is None:
        raise ValueError("diffusers references need labels (img2img edits keep them)")
    img = references.image.detach().cpu()
    if img.is_floating_point():
        img = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    label = references.label.detach().cpu().long()
    save_file({"image": img.contiguous(), "label": label.contiguous()}, str(directory / REFERENCES_NAME))


def write_diffusers_folder(
    directory: str | Path,
    config: DiffusersConfig | dict[str, Any],
    *,
    where: str = "model",
    references: Batch | None = None,
) -> Path:
    """A generator folder naming its pipeline (hub id or folder) without loading or copying it.

    Diffusion pipelines are not trained here: a recipe's ``diffusers`` generator becomes this
    folder, and ``from_pretrained`` on it loads the pipeline it names. ``references`` (real
    labeled images) are what an img2img generator edits, DA-Fusion style.

    Example:
        >>> write_diffusers_folder("runs/x/model", {"pipeline": "stabilityai/sd-turbo"})  # doctest: +SKIP
    """
    cfg = config if isinstance(config, DiffusersConfig) else config_from_dict(DiffusersConfig, config, where)
    if cfg.mode == "img2img" and references is None:
        raise ValueError(f"{where}: an img2img diffusers generator needs reference images to edit")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if references is not None:
        _save_references(d, references)
    _write_config(d, cfg, cfg.pipeline)
    return d


@GENERATORS.register(KIND)
class DiffusersGenerator:
    """A diffusers pipeline behind the ``SampleGenerator`` protocol, seeded per sample.

    Args:
        config: pipeline, prompts and call settings.
        pipe: an already loaded text-to-image pipeline (None: loaded from ``config.pipeline``).
        references: img2img source images with labels (``generate`` edits one of the label's class).

    Shape:
        ``generate(labels [n] or prompts, n, rng)`` -> Batch ``[n, channels, H, W]`` float in [0, 1].

    Example:
        >>> gen = DiffusersGenerator.from_pretrained("stabilityai/sd-turbo", class_names=["cat", "dog"])  # doctest: +SKIP
        >>> gen.generate([0, 1], 2, torch.Generator().manual_seed(0)).meta["prompt"]  # doctest: +SKIP
        ['a photo of a cat', 'a photo of a dog']
    """

    kind = KIND

    def __init__(self, config: DiffusersConfig, *, pipe: Any = None, references: Batch | None = None) -> None:
        self.config = config
        self.pipe = pipe if pipe is not None else load_pipeline(config)
        self._i2i: Any = None
        self.references: Batch | None = None
        if references is not None:
            self.set_references(references)

    # ---- loading and saving ------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, directory: str | Path, **overrides: Any) -> DiffusersGenerator:
        """Load an augmentgen ``diffusers`` folder, or wrap a diffusers pipeline (hub id or folder) directly.

        ``overrides`` replace config fields (``device``, ``steps``, ``class_prompts`` ...).
        """
        d = Path(directory)
        body_path = d / CONFIG_NAME
        if d.is_dir() and body_path.is_file() and not (d / "model_index.json").is_file():
            try:
                body = json.loads(body_path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{body_path} is not valid JSON: {e}") from e
            if not isinstance(body, dict) or body.get("format") != FORMAT or body.get("kind") != KIND:
                raise ValueError(f"{body_path} is not an augmentgen '{KIND}' config (format/kind mismatch)")
            data = {**body["config"], **overrides}
            if (d / PIPELINE_DIR / "model_index.json").is_file():
                data["pipeline"] = str(d / PIPELINE_DIR)
            elif data.get("pipeline") == PIPELINE_DIR:
                raise ValueError(
                    f"{d}: config.json says the pipeline was saved in {PIPELINE_DIR}/, which is missing"
                )
            config = config_from_dict(DiffusersConfig, data, f"{body_path}")
            refs = None
            if (d / REFERENCES_NAME).is_file():
                t = load_file(str(d / REFERENCES_NAME))
                refs = Batch(image=t["image"], label=t["label"])
            return cls(config, references=refs)
        config = config_from_dict(
            DiffusersConfig, {"pipeline": str(directory), **overrides}, "from_pretrained"
        )
        return cls(config)

    def save_pretrained(self, directory: str | Path, *, save_pipeline: bool = True) -> None:
        """``config.json`` (+ ``pipeline/`` unless ``save_pipeline=False``, + img2img references)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if save_pipeline:
            self.pipe.save_pretrained(str(d / PIPELINE_DIR))
        if self.references is not None:
            _save_references(d, self.references)
        _write_config(d, self.config, PIPELINE_DIR if save_pipeline else self.config.pipeline)

    def set_references(self, batch: Batch) -> None:
        """Real labeled images ``generate`` edits in img2img mode (kept as uint8 on the CPU)."""
        if batch.label is None:
            raise ValueError("DiffusersGenerator.set_references: the batch needs labels")
        img = batch.image.detach().cpu()
        if img.is_floating_point():
            img = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        self.references = Batch(image=img.contiguous(), label=batch.label.detach().cpu().long())

    def eval(self) -> DiffusersGenerator:
        return self

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.device)

    # ---- rendering ---------------------------------------------------------------------------

    def _call_kwargs(self, n: int, negative_prompt: str | None) -> dict[str, Any]:
        c = self.config
        kw: dict[str, Any] = {
            "num_inference_steps": c.steps,
            "guidance_scale": c.guidance_scale,
            "output_type": "pt",
        }
        neg = negative_prompt if negative_prompt is not None else c.negative_prompt
        if neg is not None:
            kw["negative_prompt"] = [neg] * n
        return kw

    def _finish(self, x: Tensor, size: tuple[int, int] | None) -> Tensor:
        x = x.to(self.device, torch.float32).clamp(0, 1)
        return x if size is None else fit_size(x, size)

    def _as_configured(self, x: Tensor) -> Tensor:
        """Generated images at ``output_size`` with ``channels`` channels."""
        if self.config.output_size is not None:
            x = fit_size(x, self.config.output_size)
        if self.config.channels == 1:
            return luma(x) if x.shape[1] == 3 else x
        return to_rgb(x)

    def render(self, prompts: list[str], seeds: list[int], *, negative_prompt: str | None = None) -> Tensor:
        """Text-to-image: ``[n, channels, H, W]`` in [0, 1], image ``i`` from ``prompts[i]`` and ``seeds[i]``."""
        if len(prompts) != len(seeds):
            raise ValueError(f"render: {len(prompts)} prompts but {len(seeds)} seeds")
        c, out = self.config, []
        for s in range(0, len(prompts), c.batch_size):
            p, sd = prompts[s : s + c.batch_size], seeds[s : s + c.batch_size]
            gens = [torch.Generator("cpu").manual_seed(int(x)) for x in sd]  # CPU: same latents on any device
            kw = self._call_kwargs(len(p), negative_prompt)
            if c.height is not None and c.width is not None:
                kw.update(height=c.height, width=c.width)
            out.append(self.pipe(prompt=p, generator=gens, **kw).images)
        return self._as_configured(self._finish(torch.cat(out), None))

    def _img2img(self) -> Any:
        if self._i2i is None:
            from diffusers import AutoPipelineForImage2Image

            self._i2i = AutoPipelineForImage2Image.from_pipe(self.pipe)  # shares the weights
            self._i2i.set_progress_bar_config(disable=True)
        return self._i2i

    def edit_images(
        self, images: Tensor, prompts: list[str], seeds: list[int], *, strength: float | None = None,
        negative_prompt: str | None = None,
    ) -> Tensor:  # fmt: skip
        """Image-to-image: ``[n, C, H, W]`` (C 1 or 3, float in [0, 1] or uint8) -> float ``[n, C, H, W]`` in [0, 1]."""
        c = self.config
        strength = c.strength if strength is None else float(strength)
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"edit: strength must be in [0, 1], got {strength}")
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"edit: images must be [n, 1 or 3, H, W], got {tuple(images.shape)}")
        if len(prompts) != images.shape[0] or len(seeds) != images.shape[0]:
            raise ValueError(f"edit: {images.shape[0]} images, {len(prompts)} prompts, {len(seeds)} seeds")
        x = images.float() / 255.0 if not images.is_floating_point() else images.float()
        size = (int(x.shape[-2]), int(x.shape[-1]))
        if int(c.steps * strength) < 1:  # no denoising step: diffusers would fail, the edit is the identity
            return x.clamp(0, 1).to(self.device)
        pipe = self._img2img()
        f = int(getattr(pipe, "vae_scale_factor", 8))
        # round up to what the VAE takes, edit, then back to the input size: geometry is kept
        work = (-(-size[0] // f) * f, -(-size[1] // f) * f)
        rgb = fit_size(to_rgb(x), work).to(self.pipe.device if hasattr(self.pipe, "device") else "cpu")
        out = []
        for s in range(0, len(prompts), c.batch_size):
            sl = slice(s, s + c.batch_size)
            gens = [torch.Generator("cpu").manual_seed(int(v)) for v in seeds[sl]]
            kw = self._call_kwargs(len(prompts[sl]), negative_prompt)
            out.append(
                pipe(prompt=prompts[sl], image=rgb[sl], strength=strength, generator=gens, **kw).images
            )
        y = self._finish(torch.cat(out), size)
        return y if x.shape[1] == 3 else luma(y)

    # ---- SampleGenerator ---------------------------------------------------------------------

    def _pick_prompts(self, labels: list[int], seeds: list[int]) -> list[str]:
        out = []
        for lab, sd in zip(labels, seeds, strict=True):
            options = self.config.prompts_of(lab)
            out.append(options[derive_seed(sd, "prompt") % len(options)])
        return out

    def _meta(
        self, prompts: list[str], seeds: list[int], strength: float | None, neg: str | None
    ) -> dict[str, Any]:
        n, c = len(prompts), self.config
        meta: dict[str, Any] = {
            "prompt": list(prompts),
            "sample_seed": [int(s) for s in seeds],
            "steps": [c.steps] * n,
            "guidance_scale": [c.guidance_scale] * n,
            "negative_prompt": [neg if neg is not None else c.negative_prompt] * n,
        }
        if strength is not None:
            meta["strength"] = [strength] * n
        return meta

    def generate(
        self, condition: Tensor | list[Any], n: int, rng: RNG, *, seeds: list[int] | None = None
    ) -> Batch:
        """``n`` images for class ids or prompts; per-sample seeds drawn from ``rng`` (or given)."""
        cond = condition.tolist() if isinstance(condition, Tensor) else list(condition)
        if len(cond) == 1 and n != 1:
            cond = cond * n
        if len(cond) != n:
            raise ValueError(f"DiffusersGenerator.generate: condition has {len(cond)} entries but n={n}")
        seeds = [child_seed(rng) for _ in range(n)] if seeds is None else [int(s) for s in seeds]
        if len(seeds) != n:
            raise ValueError(f"DiffusersGenerator.generate: {len(seeds)} seeds for n={n}")
        if all(isinstance(x, str) for x in cond):
            prompts = [str(x) for x in cond]
            found = [self.config.label_of(p) for p in prompts]
            labels = None if any(v is None for v in found) else [int(v) for v in found if v is not None]
        elif any(isinstance(x, str) for x in cond):
            raise TypeError("DiffusersGenerator.generate: condition mixes prompts and class ids")
        else:
            labels = [int(x) for x in cond]
            prompts = self._pick_prompts(labels, seeds)
        label_t = None if labels is None else torch.tensor(labels, dtype=torch.int64, device=self.device)
        if self.config.mode == "text2img":
            images = self.render(prompts, seeds)
            return Batch(image=images, label=label_t, meta=self._meta(prompts, seeds, None, None))
        if self.references is None or labels is None:
            raise ValueError(
                "DiffusersGenerator in img2img mode generates by editing reference images of the label's "
                "class: call set_references(batch) and condition on class ids (or use edit())"
            )
        src = self._reference_rows(labels, seeds)
        images = self._as_configured(self.edit_images(self.references.image[src], prompts, seeds))
        meta = self._meta(prompts, seeds, self.config.strength, None)
        meta["reference_index"] = src.tolist()
        return Batch(image=images, label=label_t, meta=meta)

    def _reference_rows(self, labels: list[int], seeds: list[int]) -> Tensor:
        if self.references is None or self.references.label is None:
            raise ValueError("img2img generate: no reference images (set_references)")
        ref = self.references.label.numpy()
        rows = []
        for lab, sd in zip(labels, seeds, strict=True):
            idx = np.flatnonzero(ref == lab)
            if idx.size == 0:
                raise ValueError(
                    f"img2img generate: no reference image of class {lab} (have {sorted(set(ref.tolist()))})"
                )
            rows.append(int(idx[derive_seed(sd, "reference") % idx.size]))
        return torch.tensor(rows, dtype=torch.int64)

    def edit(
        self, batch: Batch, rng: RNG, *, prompts: list[str] | str | None = None, strength: float | None = None,
        seeds: list[int] | None = None,
    ) -> Batch:  # fmt: skip
        """SDEdit ``batch``: same size, label, boxes, masks and keypoints; prompts default to the labels' prompts."""
        n = batch.batch_size
        seeds = [child_seed(rng) for _ in range(n)] if seeds is None else [int(s) for s in seeds]
        if prompts is None:
            if batch.label is None:
                raise ValueError("edit: give prompts, or a batch with labels and class prompts")
            plist = self._pick_prompts([int(v) for v in batch.label.tolist()], seeds)
        else:
            plist = [prompts] * n if isinstance(prompts, str) else list(prompts)
        s = self.config.strength if strength is None else float(strength)
        images = self.edit_images(batch.image, plist, seeds, strength=s).to(batch.device)
        if not batch.image.is_floating_point():
            images = (images * 255).round().to(torch.uint8)
        return batch.replace(image=images, meta={**batch.meta, **self._meta(plist, seeds, s, None)})
