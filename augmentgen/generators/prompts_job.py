"""The recipe's ``prompts`` section as a job: build the prompt source, fill the cache, summarize it.

``write_prompts(spec, cache_path)`` runs every class through ``TemplatePrompts`` or
``LLMPrompts`` and leaves them in one JSONL cache (template prompts too, so a shard names a
prompt the same way whichever source wrote it). ``spec`` is the recipe's ``PromptsSpec`` or
any object with the same fields.

Example::

    runs = write_prompts(recipe.prompts, "runs/demo/prompts.jsonl")
    for row in summarize(runs): print(row)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from augmentgen.generators.prompts import FASHION_MNIST_VOCAB, ClassVocab, TemplatePrompts
from augmentgen.generators.prompts_cache import Prompt, PromptCache, PromptRun, prompt_id, request_key
from augmentgen.generators.prompts_clean import DROP_REASONS

log = logging.getLogger(__name__)


def class_vocab(spec: Any) -> tuple[ClassVocab, ...]:
    """The classes of a prompts spec (its ``classes`` list, or the Fashion-MNIST vocabulary)."""
    if spec.classes is None:
        return FASHION_MNIST_VOCAB
    return tuple(
        ClassVocab(
            c.name, c.description, tuple(c.synonyms), tuple(c.attributes), tuple(c.contexts), c.article
        )
        for c in spec.classes
    )


def make_llm_prompts(spec: Any, cache: str | Path | None) -> Any:
    """An ``LLMPrompts`` configured by ``spec`` (defaults for a null instruction/system)."""
    from augmentgen.generators import prompts_llm as pl
    from augmentgen.generators.llm_sampling import SamplingConfig

    vocab = class_vocab(spec)
    tp = TemplatePrompts.fashion_mnist() if spec.classes is None else TemplatePrompts(list(vocab))
    default_instruction = pl.PRODUCT_INSTRUCTION if spec.classes is None else pl.DEFAULT_INSTRUCTION
    sampling = SamplingConfig(
        temperature=spec.temperature, top_p=spec.top_p, top_k=spec.top_k,
        repetition_penalty=spec.repetition_penalty, max_new_tokens=spec.max_new_tokens,
        batch_size=spec.batch_size,
    )  # fmt: skip
    return pl.LLMPrompts(
        vocab, spec.model, gguf_file=spec.gguf_file, instruction=spec.instruction or default_instruction,
        system=spec.system or pl.DEFAULT_SYSTEM, sampling=sampling, min_words=spec.min_words,
        max_words=spec.max_words, dedupe_threshold=spec.dedupe_threshold,
        on_topic_threshold=spec.on_topic_threshold, nearest_class=spec.nearest_class, cache=cache,
        **spec.topic_vote_kwargs(tp, len(vocab)),
    )  # fmt: skip


def _template_run(tp: TemplatePrompts, label: int, n: int, seed: int, cache: PromptCache | None) -> PromptRun:
    v = tp.vocab[label]
    key = request_key(model="template", templates=list(tp.templates), cls=v.name, vocab=repr(v), seed=seed)
    if cache is not None:
        hit = cache.get(key, n)
        if hit is not None:
            return hit
    t0, c0 = time.perf_counter(), time.process_time()
    texts = tp.prompts(label, n, seed=seed)
    prompts = [Prompt(prompt_id(key, t), t, v.name, label, i) for i, t in enumerate(texts)]
    record = {
        "model": "template", "class": v.name, "label": label, "description": v.text, "seed": seed, "n": n,
        "candidates": n, "kept": n, "dropped": dict.fromkeys(DROP_REASONS, 0), "exhausted": False,
        "wall_s": round(time.perf_counter() - t0, 4), "cpu_s": round(time.process_time() - c0, 4),
    }  # fmt: skip
    run = PromptRun(key, prompts, record)
    if cache is not None:
        cache.put(run)
    return run


def write_prompts(
    spec: Any,
    cache_path: str | Path,
    *,
    classes: Sequence[str] | None = None,
    on_class: Callable[[PromptRun], None] | None = None,
) -> list[PromptRun]:
    """Fill the cache with ``spec.n_per_class`` prompts per class; cached classes cost nothing.

    Args:
        spec: a ``PromptsSpec``.
        cache_path: the JSONL cache.
        classes: only these class names (default: all).
        on_class: called after each class (progress).
    """
    vocab = class_vocab(spec)
    names = [v.name for v in vocab]
    wanted = list(classes) if classes else names
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise ValueError(f"prompts: unknown classes {unknown}; the recipe's classes are {names}")
    runs: list[PromptRun] = []
    if spec.source == "template":
        tp = TemplatePrompts.fashion_mnist() if spec.classes is None else TemplatePrompts(vocab)
        cache = PromptCache(cache_path)
        for c in wanted:
            runs.append(_template_run(tp, names.index(c), spec.n_per_class, spec.seed, cache))
            if on_class:
                on_class(runs[-1])
        return runs
    llm = make_llm_prompts(spec, cache_path)
    for c in wanted:
        runs.append(llm.generate(c, spec.n_per_class, seed=spec.seed))
        if on_class:
            on_class(runs[-1])
    return runs


def summarize(runs: Sequence[PromptRun], examples: int = 2) -> list[dict[str, Any]]:
    """One row per class: kept, dropped per reason, time, and a few kept prompts."""
    rows = []
    for r in runs:
        rec = r.record
        rows.append({
            "class": rec.get("class", r.prompts[0].class_name if r.prompts else "?"),
            "kept": len(r.prompts), "candidates": rec.get("candidates", len(r.prompts)),
            "dropped": {k: int(v) for k, v in rec.get("dropped", {}).items() if v},
            "cpu_s": rec.get("cpu_s"), "wall_s": rec.get("wall_s"),
            "examples": r.texts[:examples], "key": r.key,
        })  # fmt: skip
    return rows
