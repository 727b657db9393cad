"""Settings and loading of diffusers pipelines: ``DiffusersConfig``, ``load_pipeline``, image fitting helpers.

diffusers is imported inside ``load_pipeline`` only, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class DiffusersConfig:
    """How a diffusers pipeline is loaded and called.

    Args:
        pipeline: hub id or local folder of a diffusers pipeline (``model_index.json``).
        mode: ``text2img`` renders prompts; ``img2img`` edits reference images (``generate``) or
            given ones (``edit``).
        class_prompts: class id -> one prompt or a list (a sample picks one by its seed).
        class_names: with ``prompt_template``, the prompts of classes ``0..n-1`` when
            ``class_prompts`` is empty.
        negative_prompt: what to steer away from (classifier-free guidance only).
        steps: denoising steps (img2img runs ``int(steps * strength)`` of them).
        guidance_scale: classifier-free guidance weight; <= 1 disables it.
        strength: img2img noise level in [0, 1]; 0 returns the input unchanged.
        height, width: text2img size (None: the pipeline's default).
        output_size: ``[H, W]`` the images are resized to afterwards (None: as rendered).
        channels: 3, or 1 for grayscale output (luma).
        batch_size: samples per pipeline call.
        dtype, device: where and in what precision the pipeline runs (``auto``: CUDA when there).
        attention_slicing, vae_slicing, vae_tiling, cpu_offload: CUDA memory savers, ignored on CPU.
        variant: weight variant to load (``fp16``), or None.
    """

    LOOSE_FIELDS: ClassVar[frozenset[str]] = frozenset({"class_prompts"})  # one prompt or a list; normalized below

    pipeline: str
    mode: Literal["text2img", "img2img"] = "text2img"
    class_prompts: dict[int, list[str]] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    prompt_template: str = "a photo of a {name}"
    negative_prompt: str | None = None
    steps: int = 30
    guidance_scale: float = 7.5
    strength: float = 0.5
    height: int | None = None
    width: int | None = None
    output_size: tuple[int, int] | None = None
    channels: int = 3
    batch_size: int = 4
    dtype: str = "float32"
    device: str = "auto"
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = False
    variant: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("text2img", "img2img"):
            raise ValueError(f"DiffusersConfig.mode must be 'text2img' or 'img2img', got {self.mode!r}")
        prompts: dict[int, list[str]] = {}
        for k, v in dict(self.class_prompts).items():
            try:
                key = int(k)
            except (TypeError, ValueError):
                raise ValueError(f"DiffusersConfig.class_prompts: key {k!r} is not a class id") from None
            vals = [v] if isinstance(v, str) else list(v)
            if not vals or not all(isinstance(p, str) and p.strip() for p in vals):
                raise ValueError(f"DiffusersConfig.class_prompts[{key}] must be non-empty strings, got {v!r}")
            prompts[key] = vals
        self.class_prompts = prompts
        self.class_names = [str(n) for n in self.class_names]  # lists arrive as tuples from JSON configs
        if self.class_names and "{name}" not in self.prompt_template:
            raise ValueError(
                f"DiffusersConfig.prompt_template needs '{{name}}', got {self.prompt_template!r}"
            )
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"DiffusersConfig: steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}"
            )
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"DiffusersConfig.strength must be in [0, 1], got {self.strength}")
        if self.channels not in (1, 3):
            raise ValueError(f"DiffusersConfig.channels must be 1 or 3, got {self.channels}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"DiffusersConfig.dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        for side in ("height", "width"):
            v = getattr(self, side)
            if v is not None and (v < 8 or v % 8):
                raise ValueError(f"DiffusersConfig.{side} must be a multiple of 8 (the VAE's scale), got {v}")
        if self.output_size is not None:
            size = self.output_size
            if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(isinstance(v, int) and v >= 1 for v in size):
                raise ValueError(f"DiffusersConfig.output_size must be [height, width], two integers >= 1, got {size!r}")
            self.output_size = (int(size[0]), int(size[1]))

    def prompts_of(self, label: int) -> list[str]:
        """The prompts of class ``label``; a ValueError names the class when there are none."""
        if label in self.class_prompts:
            return self.class_prompts[label]
        if 0 <= label < len(self.class_names):
            return [self.prompt_template.format(name=self.class_names[label])]
        known = sorted(self.class_prompts) or list(range(len(self.class_names)))
        raise ValueError(
            f"no prompt for class {label}: set class_prompts or class_names (known classes {known})"
        )

    def label_of(self, prompt: str) -> int | None:
        for k, vals in self.class_prompts.items():
            if prompt in vals:
                return k
        for k, name in enumerate(self.class_names):
            if prompt == self.prompt_template.format(name=name):
                return k
        return None


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_pipeline(config: DiffusersConfig, path: str | None = None) -> Any:
    """The text-to-image diffusers pipeline of ``config`` (or ``path``), on its device, memory options set."""
    from diffusers import AutoPipelineForText2Image

    where = path or config.pipeline
    device, dtype = resolve_device(config.device), _DTYPES[config.dtype]
    if device.type == "cpu" and dtype == torch.float16:
        raise ValueError(
            f"diffusers pipeline {where!r}: dtype float16 needs CUDA; use float32 or bfloat16 on CPU"
        )
    kw: dict[str, Any] = {"torch_dtype": dtype}
    if config.variant:
        kw["variant"] = config.variant
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(where, **kw)  # type: ignore[no-untyped-call]
    except (OSError, ValueError) as e:
        raise ValueError(
            f"cannot load diffusers pipeline {where!r} (hub id or folder with model_index.json): {e}"
        ) from e
    pipe.set_progress_bar_config(disable=True)
    savers = [
        n for n in ("attention_slicing", "vae_slicing", "vae_tiling", "cpu_offload") if getattr(config, n)
    ]
    if device.type != "cuda":
        if savers:
            logger.info("diffusers memory options %s apply on CUDA only; ignored on %s", savers, device)
        return pipe.to(device)
    if config.attention_slicing:
        pipe.enable_attention_slicing()
    vae = getattr(pipe, "vae", None)
    if config.vae_slicing and vae is not None:
        vae.enable_slicing()
    if config.vae_tiling and vae is not None:
        vae.enable_tiling()
    if config.cpu_offload:
        pipe.enable_model_cpu_offload(device=device)  # moves each model to the GPU only while it runs
        return pipe
    return pipe.to(device)


def fit_size(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    down = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=down).clamp(0, 1)


def to_rgb(x: Tensor) -> Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def luma(x: Tensor) -> Tensor:
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
    return (x * w[None, :, None, None]).sum(1, keepdim=True)
