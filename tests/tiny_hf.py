"""Tiny Hugging Face parts built from config for offline tests: a byte-level CLIP tokenizer, a
Stable Diffusion pipeline and a CLIP model, each saved with ``save_pretrained`` so tests load
them through the same ``from_pretrained`` path users take with hub ids.

Follows diffusers' own ``get_dummy_components()`` (a UNet at ``sample_size=8``), smaller still.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def write_tiny_clip_tokenizer(directory: Path, max_length: int = 64) -> Path:
    """A CLIP tokenizer whose vocabulary is the 256 byte symbols (with and without ``</w>``), no merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    chars = sorted(ByteLevel.alphabet())
    for suffix in ("", "</w>"):
        for c in chars:
            vocab.setdefault(c + suffix, len(vocab))
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer.from_pretrained(str(directory), model_max_length=max_length)
    tok.save_pretrained(str(directory))
    return directory


def _clip_text_config(vocab_size: int, max_length: int) -> object:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=8, intermediate_size=16,
        num_attention_heads=2, num_hidden_layers=1, vocab_size=vocab_size, max_position_embeddings=max_length,
        projection_dim=8,
    )  # fmt: skip


def save_tiny_sd_pipeline(directory: Path, seed: int = 0) -> Path:
    """A Stable Diffusion pipeline with a 2-block UNet, VAE (scale factor 2) and 1-layer CLIP text model."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    tok_dir = write_tiny_clip_tokenizer(directory.parent / (directory.name + "-tokenizer"))
    tok = CLIPTokenizer.from_pretrained(str(tok_dir))
    g = torch.random.fork_rng()  # weights from a fixed seed without leaking into the caller's global RNG
    with g:
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            block_out_channels=(4, 8), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=8, norm_num_groups=2, attention_head_dim=2,
        )  # fmt: skip
        vae = AutoencoderKL(
            block_out_channels=[4, 8], in_channels=3, out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
            latent_channels=4, norm_num_groups=2,
        )  # fmt: skip
        text = CLIPTextModel(_clip_text_config(len(tok), tok.model_max_length))  # type: ignore[arg-type]
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )  # fmt: skip
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text, tokenizer=tok, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(str(directory))
    return directory


def save_tiny_clip(directory: Path, seed: int = 0, image_size: int = 16) -> Path:
    """A CLIPModel (text and vision towers of width 8) with its tokenizer and image processor."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    tok_dir = write_tiny_clip_tokenizer(directory.parent / (directory.name + "-tokenizer"))
    tok = CLIPTokenizer.from_pretrained(str(tok_dir))
    vision = CLIPVisionConfig(
        hidden_size=12, intermediate_size=24, num_attention_heads=2, num_hidden_layers=1,
        image_size=image_size, patch_size=4, projection_dim=8,
    )  # fmt: skip
    text = _clip_text_config(len(tok), tok.model_max_length)
    cfg = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=8)  # type: ignore[attr-defined]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CLIPModel(cfg)
    proc = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size=image_size),
        tokenizer=tok,
    )
    model.save_pretrained(str(directory))
    proc.save_pretrained(str(directory))
    return directory
