"""Caption banks for the text-to-image GAN: prompts per class written once, embedded once, stored as files.

A bank folder holds ``captions.jsonl`` (one ``{"label", "prompt", "source"}`` per line) and
``captions.safetensors`` (their unit embeddings, with the encoder's name in the metadata), so
a recipe's training captions and render prompts are computed once and reused by every stage.
``TextToImageGAN.from_config({"captions": FOLDER, ...})`` reads one.

Example::

    rows = caption_rows(TemplatePrompts.fashion_mnist(), None, template_per_class=50)
    bank = write_caption_bank("runs/x/prompts/train", rows, load_text_encoder("minilm"))
    texts, labels, emb = read_caption_bank(bank)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

logger = logging.getLogger(__name__)

ROWS_NAME = "captions.jsonl"
EMB_NAME = "captions.safetensors"


def caption_rows(
    template: Any,
    llm: Any,
    *,
    template_per_class: int,
    llm_per_class: int = 0,
    seed: int = 0,
    num_classes: int | None = None,
) -> list[dict[str, Any]]:
    """``template_per_class`` grammar prompts and ``llm_per_class`` LLM prompts of every class, as rows.

    Args:
        template: a ``TemplatePrompts`` (anything with ``prompts(cls, n, seed)``), or None.
        llm: an ``LLMPrompts`` (same interface), or None.
        template_per_class: grammar prompts per class.
        llm_per_class: LLM prompts per class (fewer when its filter drops too many; logged).
        seed: the draw of both sources.
        num_classes: classes ``0..n-1`` (default: the template's or the LLM's class count).

    Example:
        >>> rows = caption_rows(TemplatePrompts(["fog", "rain"]), None, template_per_class=2)  # doctest: +SKIP
    """
    src = template if template is not None else llm
    if src is None:
        raise ValueError("caption_rows: give a template grammar, an LLM, or both")
    n_cls = num_classes if num_classes is not None else len(src.class_names)
    rows: list[dict[str, Any]] = []
    for c in range(n_cls):
        if template is not None and template_per_class:
            rows += [
                {"label": c, "prompt": p, "source": "template"}
                for p in template.prompts(c, template_per_class, seed)
            ]
        if llm is not None and llm_per_class:
            got = llm.prompts(c, llm_per_class, seed)
            if len(got) < llm_per_class:
                logger.warning(
                    "class %d: the LLM gave %d of %d prompts after filtering", c, len(got), llm_per_class
                )
            rows += [{"label": c, "prompt": p, "source": "llm"} for p in got]
    missing = sorted(set(range(n_cls)) - {int(r["label"]) for r in rows})
    if missing:
        raise ValueError(f"caption_rows: classes {missing} got no caption (raise the per-class counts)")
    return rows


def write_caption_bank(directory: str | Path, rows: Sequence[dict[str, Any]], encoder: Any) -> Path:
    """Embed ``rows``' prompts with ``encoder`` and write the bank folder; returns it.

    An existing bank with the same rows and encoder is kept as is (no re-encoding).
    """
    d = Path(directory)
    rows = [
        {"label": int(r["label"]), "prompt": str(r["prompt"]), "source": str(r.get("source", ""))}
        for r in rows
    ]
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    if (d / ROWS_NAME).is_file() and (d / EMB_NAME).is_file() and (d / ROWS_NAME).read_text() == text:
        try:
            if (
                load_file(str(d / EMB_NAME)).get("emb") is not None
                and _meta(d).get("encoder") == encoder.name
            ):
                return d
        except (SafetensorError, OSError):
            pass
    d.mkdir(parents=True, exist_ok=True)
    emb = encoder.encode([r["prompt"] for r in rows]).float().contiguous()
    tmp = d / (EMB_NAME + ".tmp")
    save_file({"emb": emb}, str(tmp), metadata={"encoder": str(encoder.name), "dim": str(int(emb.shape[1]))})
    tmp.replace(d / EMB_NAME)
    tmp_rows = d / (ROWS_NAME + ".tmp")
    tmp_rows.write_text(text)
    tmp_rows.replace(d / ROWS_NAME)
    return d


def _meta(d: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(d / EMB_NAME), framework="pt") as f:
        return dict(f.metadata() or {})


def read_caption_bank(directory: str | Path) -> tuple[list[str], Tensor, Tensor]:
    """``(texts, labels [N], embeddings [N, D])`` of a bank folder; a broken folder is a ValueError naming it."""
    d = Path(directory)
    if not (d / ROWS_NAME).is_file() or not (d / EMB_NAME).is_file():
        raise ValueError(f"{d} is not a caption bank: need {ROWS_NAME} and {EMB_NAME}")
    try:
        rows = [json.loads(line) for line in (d / ROWS_NAME).read_text().splitlines() if line.strip()]
        emb = load_file(str(d / EMB_NAME))["emb"]
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise ValueError(f"{d}: caption bank cannot be read: {e}") from e
    if emb.ndim != 2 or emb.shape[0] != len(rows):
        raise ValueError(f"{d}: {len(rows)} captions but embeddings of shape {list(emb.shape)}")
    labels = torch.tensor([int(r["label"]) for r in rows], dtype=torch.int64)
    return [str(r["prompt"]) for r in rows], labels, emb.float()


def recipe_caption_bank(
    spec: Any, class_names: Sequence[str], data_source: str, folder: str | Path, which: str
) -> Path:
    """Write (or reuse) the ``train`` or ``render`` caption bank of a recipe's ``text_to_image`` section.

    Args:
        spec: the recipe's ``TextToImageSpec``.
        class_names: the data set's classes (index = label).
        data_source: the recipe's ``data.source``; ``fashion_mnist`` gets the built-in vocabularies.
        folder: where banks and the LLM prompt cache go (``RUN/prompts``).
        which: ``"train"`` (template + LLM captions, seed 0) or ``"render"`` (``spec.render`` prompts).
    """
    from augmentgen.generators.prompts import FASHION_MNIST_VOCAB, ClassVocab, TemplatePrompts
    from augmentgen.generators.text_encoders import load_text_encoder

    if which not in ("train", "render"):
        raise ValueError(f"recipe_caption_bank: which must be 'train' or 'render', got {which!r}")
    vocab: Sequence[ClassVocab | str] = (
        FASHION_MNIST_VOCAB
        if data_source == "fashion_mnist" and len(class_names) == 10
        else list(class_names)
    )
    template = (
        TemplatePrompts.fashion_mnist() if vocab is FASHION_MNIST_VOCAB else TemplatePrompts(list(vocab))
    )
    root = Path(folder)

    def llm() -> Any:
        from augmentgen.generators.prompts_llm import LLMPrompts

        kw: dict[str, Any] = {"instruction": spec.llm_instruction} if spec.llm_instruction else {}
        kw.update(spec.topic_vote_kwargs(template, len(vocab)))
        cache = spec.prompt_cache or root / "llm_prompts.jsonl"
        return LLMPrompts(vocab, spec.llm_model, cache=cache, encoder=spec.text_encoder, **kw)

    if which == "train":
        rows = caption_rows(
            template if spec.template_per_class else None, llm() if spec.llm_per_class else None,
            template_per_class=spec.template_per_class, llm_per_class=spec.llm_per_class, seed=0,
            num_classes=len(class_names),
        )  # fmt: skip
    elif spec.render == "template":
        rows = caption_rows(
            template,
            None,
            template_per_class=spec.render_per_class,
            seed=spec.render_seed,
            num_classes=len(class_names),
        )
    else:
        rows = caption_rows(
            None, llm(), template_per_class=0, llm_per_class=spec.render_per_class, seed=spec.render_seed,
            num_classes=len(class_names),
        )  # fmt: skip
    return write_caption_bank(root / which, rows, load_text_encoder(spec.text_encoder))


def set_render_prompts(model_dir: str | Path, bank: str | Path) -> dict[str, Any]:
    """Make a saved ``TextToImageGAN``'s bank the prompts of ``bank`` (rewrites ``model_dir`` in place)."""
    from augmentgen.generators import checkpoint as ckpt
    from augmentgen.generators.t2i import TextToImageGAN

    model = TextToImageGAN.from_pretrained(model_dir)
    texts, labels, emb = read_caption_bank(bank)
    model.set_captions(texts, labels, emb)
    meta = dict(ckpt.read_config(model_dir).get("meta", {}))
    meta.pop("captions", None)
    model.save_pretrained(model_dir, meta={**meta, "render_bank": str(bank)})
    return {"render_prompts": len(texts), "render_bank": str(bank)}
