"""The recipe schema: one YAML file from real data to shards, checks and the downstream evaluation.

A recipe composes the section models the other modules already own (``DataSpec``,
``ClassifierSpec``, ``GeneratorSpec`` from ``generators.config``; ``ShardsConfig`` and
``RunConfig`` from ``shards.config``; ``CheckConfig`` from ``checks.suite``) and adds the
sections only the main job needs (``filters``, ``evaluate``). Every model rejects unknown keys.

Example::

    name: digits-tiny
    data: {source: digits, n_per_class: 20}
    pipeline: {transforms: [{name: rotate, degrees: [-10, 10]}]}
    generators:
      - {name: cvae, kind: cvae, train: {steps: 30}}
    shards: {count: 2, size: 40}
    checks: {features: pixels, gates: {fid: "< 1e9"}}
    evaluate: {seeds: [0]}
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from augmentgen.checks.suite import CheckConfig
from augmentgen.generators.config import ClassifierSpec, DataSpec, GeneratorSpec
from augmentgen.shards.config import RunConfig, ShardsConfig

Arm = Literal["real", "real_classical", "real_classical_synthetic", "synthetic"]
ARMS: tuple[Arm, ...] = ("real", "real_classical", "real_classical_synthetic", "synthetic")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecipeData(DataSpec):
    """Where the real data comes from; ``root`` must exist when given."""

    @field_validator("root")
    @classmethod
    def _root_exists(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).exists():
            raise ValueError(f"path does not exist: {v!r}")
        return v


class RecipeGenerator(GeneratorSpec):
    """A generator of the recipe: trained on the recipe's real data, or loaded with ``from_pretrained``."""

    from_pretrained: str | None = Field(
        default=None,
        description="a generator folder (config.json + model.safetensors) used instead of training",
    )
    shards: bool = Field(default=True, description="write shards from this generator")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"generator name must be letters, digits and '_' (it names folders), got {v!r}")
        return v

    @field_validator("from_pretrained")
    @classmethod
    def _exists(cls, v: str | None) -> str | None:
        if v is not None and not (Path(v) / "config.json").is_file():
            raise ValueError(f"from_pretrained folder has no config.json: {v!r}")
        return v

    @model_validator(mode="after")
    def _diffusers_model(self) -> RecipeGenerator:
        """A ``diffusers`` generator is not trained: ``model`` names its pipeline and call settings."""
        if self.kind == "diffusers" and self.from_pretrained is None:
            from augmentgen.generators.checkpoint import config_from_dict
            from augmentgen.generators.diffusers_pipeline import DiffusersConfig

            if "pipeline" not in self.model:
                raise ValueError(
                    f"generator {self.name!r} (diffusers): model.pipeline (hub id or folder) is required"
                )
            config_from_dict(DiffusersConfig, self.model, f"generators.{self.name}.model")
        return self


class ClipFilterSpec(_Strict):
    """CLIP-score filter: drop rows whose CLIPScore (100 x cosine) against their prompt is below ``min_score``."""

    model: str = Field(description="hub id or folder of a CLIP model with its processor")
    min_score: float = Field(ge=0, le=100, description="minimum CLIPScore, 0..100")
    class_prompts: dict[int, str] = Field(
        default_factory=dict, description="class id -> text for rows without a prompt in their meta"
    )
    device: str | None = Field(default=None, description="where CLIP runs (null: the batch's device)")


class FiltersSpec(_Strict):
    """Per-sample filters applied to generated batches before they are written to shards."""

    finite: bool = Field(default=True, description="drop rows with NaN/inf pixels")
    blank_std: float | None = Field(
        default=2.0 / 255.0, ge=0, description="drop rows whose pixel std is at most this; null disables"
    )
    min_confidence: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="drop rows the reference classifier gives less than this probability of their label",
    )
    clip: ClipFilterSpec | None = Field(
        default=None, description="CLIP-score filter against each row's prompt"
    )


class TopicVoteSpec(_Strict):
    """How LLM-written lines are checked for their class: a k-NN vote over template captions.

    ``LLMPrompts(topic_bank=..., knn=..., min_vote=...)``: the ``knn`` nearest of
    ``topic_bank_per_class`` template captions per class vote, and a line's class must hold a
    strict plurality and at least ``min_vote`` of the votes (0 captions: one description per class).
    """

    topic_bank_per_class: int = Field(
        default=100, ge=0,
        description="template captions per class whose k-NN vote is the nearest-class test (0: descriptions)",
    )  # fmt: skip
    knn: int = Field(default=10, ge=1, description="topic-bank neighbours that vote")
    min_vote: float = Field(
        default=0.7, ge=0, le=1, description="least share of the knn votes a line's class must hold"
    )

    def topic_vote_kwargs(self, template: Any, num_classes: int) -> dict[str, Any]:
        """``LLMPrompts`` keyword arguments of the vote, the bank drawn from ``template`` (seed 0)."""
        if not self.topic_bank_per_class:
            return {}
        n = self.topic_bank_per_class
        return {
            "topic_bank": [template.prompts(c, n, seed=0) for c in range(num_classes)],
            "knn": min(self.knn, n * num_classes), "min_vote": self.min_vote,
        }  # fmt: skip


class TextToImageSpec(TopicVoteSpec):
    """Captions and prompts of the recipe's text-to-image generators (``kind: t2i``).

    Training captions: ``template_per_class`` grammar prompts plus ``llm_per_class`` LLM-written
    ones per class (seed 0), embedded once by ``text_encoder``. After training, the model's bank
    becomes the ``render`` prompts (seed ``render_seed``), which shards and evaluation arms draw
    per image; each shard sample names its prompt in its provenance.
    """

    template_per_class: int = Field(default=100, ge=0, description="grammar captions per class for training")
    llm_per_class: int = Field(
        default=0, ge=0, description="LLM-written training captions per class (0: template only)"
    )
    llm_model: str = Field(
        default="smollm2", description="causal LM for prompts: smollm2 (offline), hub id, folder"
    )
    llm_instruction: str | None = Field(
        default=None, description="per-class instruction with {name} and {description} (null: the default)"
    )
    render: Literal["train", "template", "llm"] = Field(
        default="template", description="prompts rendered into shards: the training captions, or fresh ones"
    )
    render_per_class: int = Field(default=20, ge=1, description="render prompts per class")
    render_seed: int = Field(default=1, description="seed of the render prompts (training captions use 0)")
    text_encoder: str = Field(default="minilm", description="minilm, minilm:PATH or clip:ID")
    prompt_cache: str | None = Field(
        default=None, description="LLM prompt cache JSONL (null: RUN/prompts/llm_prompts.jsonl)"
    )

    @model_validator(mode="after")
    def _some_captions(self) -> TextToImageSpec:
        if self.template_per_class + self.llm_per_class < 1:
            raise ValueError("text_to_image: template_per_class + llm_per_class must be >= 1")
        return self


class ChecksSpec(CheckConfig):
    """``CheckConfig`` (feature space, metrics, gates) plus how much data the run's check uses."""

    enabled: bool = Field(default=True, description="false: the run skips the check stage")
    n_real: int = Field(default=2000, ge=2, description="real test images compared with the shards")
    n_generated: int | None = Field(default=None, ge=2, description="shard samples checked (null: all)")

    def check_config(self) -> CheckConfig:
        return CheckConfig.model_validate(self.model_dump(exclude={"enabled", "n_real", "n_generated"}))


class LabelMixSpec(_Strict):
    """MixUp / CutMix on every training batch of the classical arms (``pipeline.LabelMix``)."""

    mixup_alpha: float = Field(default=1.0, ge=0, description="MixUp's Beta(alpha, alpha) weight; 0: no MixUp")
    cutmix_alpha: float = Field(
        default=1.0, ge=0, description="CutMix's Beta(alpha, alpha) weight (box of about 1 - weight); 0: no CutMix"
    )
    switch_prob: float = Field(default=0.5, ge=0, le=1, description="with both on: the share of rows that use CutMix")
    p: float = Field(default=1.0, ge=0, le=1, description="the share of rows mixed at all")
    label_smoothing: float = Field(default=0.0, ge=0, le=1, description="smoothing of the targets before mixing")
    per_sample: bool = Field(
        default=True, description="a draw per row (false: one per batch, as torchvision's MixUp / CutMix)"
    )

    @model_validator(mode="after")
    def _something_mixes(self) -> LabelMixSpec:
        if self.mixup_alpha == 0 and self.cutmix_alpha == 0:
            raise ValueError("mixup_alpha and cutmix_alpha are both 0, so nothing would be mixed")
        return self


class EvaluateSpec(_Strict):
    """The downstream protocol: the reference classifier trained per arm and seed, tested on real test data.

    Arms: ``real`` (the recipe's real subset), ``real_classical`` (plus ``classical_copies``
    pipeline-augmented copies of it), ``real_classical_synthetic`` (plus ``synthetic_per_class``
    images per class from the recipe's generators, trained on the same subset), ``synthetic``
    (generated images only: CAS).
    """

    enabled: bool = Field(default=True, description="false: the run skips the evaluation stage")
    arms: list[Arm] = Field(
        default_factory=lambda: list(ARMS),
        description="which of real, real_classical, real_classical_synthetic, synthetic (CAS) to train",
    )
    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2],
        min_length=1,
        description="one classifier per arm and seed (the seed draws its weights, batches, classical "
        "copies and generated images); evaluation.json and the report give each arm's mean and std",
    )
    classical_copies: int = Field(default=4, ge=1, description="augmented copies of each real image")
    synthetic_per_class: int = Field(
        default=500, ge=1, description="generated images per class (all generators)"
    )
    steps: int | None = Field(
        default=None, ge=1, description="classifier steps per arm (null: classifier.steps)"
    )
    shift_augment: bool = Field(
        default=False,
        description="the classifier's built-in random shifts; off so 'real' is really un-augmented",
    )
    test_limit: int | None = Field(
        default=None, ge=1, description="test images used (null: the full test set)"
    )
    synthetic_share: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description=(
            "real_classical_synthetic: repeat real + classical so generated images are about this "
            "share of the training set (null: as many as they are)"
        ),
    )
    synthetic_oversample: int = Field(
        default=1,
        ge=1,
        description=(
            "generate this many times synthetic_per_class per class and keep the synthetic_per_class "
            "the run's reference classifier (trained on the same real subset) is most confident of "
            "(1: as drawn)"
        ),
    )
    synthetic_schedule: Literal["mix", "pretrain"] = Field(
        default="mix",
        description=(
            "real_classical_synthetic: 'mix' trains on all of it at once; 'pretrain' spends half "
            "the steps on all of it, then fine-tunes on real + classical for the other half"
        ),
    )
    synthetic_pipeline: dict[str, Any] | list[Any] | None = Field(
        default=None,
        description=(
            "real_classical_synthetic: ops every generated image passes through once (a pipeline "
            "section, e.g. {transforms: [{name: trivial_augment}]}), drawn per evaluation seed; the "
            "real images keep the recipe's pipeline (null: the generated images as drawn; the "
            "synthetic-only arm always takes them as drawn)"
        ),
    )
    label_mix: LabelMixSpec | None = Field(
        default=None,
        description=(
            "MixUp / CutMix on every training batch of real_classical and real_classical_synthetic "
            "(the classical arms; real and synthetic stay unmixed), seeded per evaluation seed "
            "(null: none)"
        ),
    )

    @field_validator("synthetic_pipeline")
    @classmethod
    def _synthetic_pipeline(cls, v: Any) -> Any:
        if v is not None:
            from augmentgen.pipeline import Pipeline

            Pipeline.from_dict(v, where="evaluate.synthetic_pipeline")
        return v


class PromptClassSpec(_Strict):
    """One class to write prompts for: a name with a description (and optional template words)."""

    name: str = Field(min_length=1, description="the class name, as the data source names it")
    description: str = Field(default="", description="what the class is; the LLM's topic reference")
    synonyms: list[str] = Field(
        default_factory=list, description="nouns the templates may use for the class (empty: the name)"
    )
    attributes: list[str] = Field(
        default_factory=list, description="adjectives or short phrases the templates add (e.g. 'leather')"
    )
    contexts: list[str] = Field(
        default_factory=list, description="where or how it is seen (e.g. 'folded on a shelf')"
    )
    article: str = Field(default="a", description="'a' (a/an), 'a pair of', or '' for mass nouns (fog)")


class PromptsSpec(TopicVoteSpec):
    """Prompts per class, from the template grammar or an LLM, written to a JSONL cache.

    Args:
        source: ``template`` (seeded grammar) or ``llm`` (a causal LM writes them).
        classes: the classes (null: the built-in Fashion-MNIST vocabulary).
    """

    source: Literal["template", "llm"] = "template"
    classes: list[PromptClassSpec] | None = None
    model: str = Field(default="smollm2", description="causal LM: 'smollm2', hub id, folder or .gguf")
    gguf_file: str | None = Field(default=None, description="GGUF file inside model (a folder or hub repo)")
    instruction: str | None = Field(
        default=None, description="per-class user message with {name} and {description} (null: the default)"
    )
    system: str | None = Field(default=None, description="system message (null: the default)")
    n_per_class: int = Field(default=60, ge=1, description="prompts kept per class")
    seed: int = Field(default=0, description="seeds the template draws and the LLM's sampling")
    cache: str | None = Field(default=None, description="JSONL prompt cache (null: runs/NAME/prompts.jsonl)")
    dedupe_threshold: float | None = Field(default=0.92, ge=-1, le=1, description="MiniLM near-dup cosine")
    on_topic_threshold: float | None = Field(
        default=0.3, ge=-1, le=1, description="least MiniLM cosine to the class description"
    )
    nearest_class: bool = Field(default=True, description="drop lines that read as another class")
    min_words: int = Field(default=3, ge=1, description="shorter LLM lines are dropped (counted in the cache)")
    max_words: int = Field(default=20, ge=1, description="longer LLM lines are dropped")
    temperature: float = Field(default=0.7, gt=0, description="LLM sampling temperature")
    top_p: float = Field(default=0.95, gt=0, le=1, description="LLM nucleus sampling: the smallest set of tokens with this mass")
    top_k: int = Field(default=0, ge=0, description="LLM sampling from the k likeliest tokens (0: no limit)")
    repetition_penalty: float = Field(
        default=1.1, ge=1, description="CTRL-style: tokens already written are made this much less likely (1: none)"
    )
    max_new_tokens: int = Field(default=32, ge=1, description="tokens the LLM writes per prompt at most")
    batch_size: int = Field(default=16, ge=1, description="prompts the LLM writes in one batch")

    @model_validator(mode="after")
    def _check(self) -> PromptsSpec:
        if self.min_words > self.max_words:
            raise ValueError(f"prompts: min_words {self.min_words} > max_words {self.max_words}")
        if self.classes is not None:
            names = [c.name for c in self.classes]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup or not names:
                raise ValueError(f"prompts.classes: names must be unique and non-empty, repeated {dup}")
        return self


class Recipe(_Strict):
    """A whole recipe: data, pipeline, generators, filters, shards, checks, evaluation.

    Example:
        >>> r = Recipe.model_validate({"data": {"source": "digits"}, "shards": {"count": 1}})
        >>> len(r.sha256())
        64
    """

    name: str = Field(
        default="recipe",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
        description="names the run folder (runs/NAME)",
    )
    seed: int = Field(default=0, description="seed of the test subset drawn when evaluate.test_limit is set")
    num_threads: int | None = Field(default=None, ge=1, description="torch.set_num_threads for the run")
    data: RecipeData = Field(default_factory=lambda: RecipeData())
    classifier: ClassifierSpec = Field(default_factory=lambda: ClassifierSpec())
    pipeline: dict[str, Any] | list[Any] | None = Field(
        default=None, description="classical ops (Pipeline.from_dict): on shards and in the classical arms"
    )
    generators: list[RecipeGenerator] = Field(default_factory=list)
    text_to_image: TextToImageSpec | None = Field(
        default=None, description="captions and render prompts of kind-t2i generators"
    )
    filters: FiltersSpec = Field(default_factory=lambda: FiltersSpec())
    shards: ShardsConfig
    checks: ChecksSpec = Field(default_factory=lambda: ChecksSpec())
    evaluate: EvaluateSpec = Field(default_factory=lambda: EvaluateSpec())
    run: RunConfig = Field(default_factory=lambda: RunConfig())
    prompts: PromptsSpec | None = Field(default=None, description="prompts per class (augmentgen prompts)")

    @field_validator("pipeline")
    @classmethod
    def _pipeline(cls, v: Any) -> Any:
        if v is None:
            return v
        from augmentgen.pipeline import Pipeline

        Pipeline.from_dict(v, where="pipeline")  # unknown ops and bad hyperparameters fail here
        return v

    @model_validator(mode="after")
    def _unique_generators(self) -> Recipe:
        names = [g.name for g in self.generators]
        t2i = [g.name for g in self.generators if g.kind == "t2i" and g.from_pretrained is None]
        if t2i and self.text_to_image is None:
            raise ValueError(f"generators {t2i} (kind t2i) need a text_to_image section for their captions")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"generators: names must be unique, repeated {dup}")
        needs_gen = {"real_classical_synthetic", "synthetic"} & set(self.evaluate.arms)
        if self.evaluate.enabled and needs_gen and not self.generators:
            raise ValueError(f"evaluate.arms {sorted(needs_gen)} need at least one generator")
        return self

    def resolved(self) -> dict[str, Any]:
        """The recipe with every default filled in, as JSON types."""
        return self.model_dump(mode="json")

    def sha256(self, sections: tuple[str, ...] | None = None) -> str:
        """Hash of the resolved recipe (or some of its sections); ``run`` and ``num_threads`` never count.

        Example:
            >>> Recipe.model_validate({"shards": {"count": 1}}).sha256(("shards",))[:8]  # doctest: +SKIP
        """
        data = {k: v for k, v in self.resolved().items() if k not in ("run", "num_threads")}
        if data.get("text_to_image", 0) is None:  # recipes without it keep the hashes they had
            del data["text_to_image"]
        if data["filters"].get("clip", 0) is None:  # recipes without a CLIP filter keep their hashes
            del data["filters"]["clip"]
        if sections is not None:
            data = {k: data[k] for k in sections}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _docstring_args(model: type[BaseModel]) -> dict[str, str]:
    """``name: text`` entries of the ``Args:`` section of a model's docstring (continuation lines joined)."""
    out: dict[str, str] = {}
    doc = model.__doc__ or ""
    if "Args:" not in doc:
        return out
    current = None
    for line in doc.split("Args:", 1)[1].splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        m = re.match(r"^(\w+): (.*)$", stripped)
        indent = len(line) - len(line.lstrip())
        if m and indent <= 8:
            current = m.group(1)
            out[current] = m.group(2)
        elif current is not None and indent > 8:
            out[current] += " " + stripped
        elif stripped.endswith(":"):
            break
    return out


def field_docs(model: type[BaseModel] = Recipe, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """``(dotted field, type, default, description)`` for every field of ``model``, nested sections expanded.

    Used to generate the README's recipe reference, so it cannot drift from the schema.
    """
    rows: list[tuple[str, str, str, str]] = []
    args = _docstring_args(model)
    for name, f in model.model_fields.items():
        ann = f.annotation
        key = f"{prefix}{name}"
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if sub is None:
            inner = [
                a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)
            ]
            sub = inner[0] if len(inner) == 1 and getattr(ann, "__origin__", None) is list else None
            if sub is not None:
                key += "[]"
        if sub is not None:
            doc = (sub.__doc__ or "").strip().splitlines()[0] if sub.__doc__ else ""
            rows.append((key, "section", "", doc))
            rows += field_docs(sub, key + ".")
            continue
        value = f.default_factory() if f.default_factory is not None else f.default  # type: ignore[call-arg]
        default = "required" if f.is_required() else json.dumps(value, default=str)
        tname = str(ann).replace("typing.", "") if not isinstance(ann, type) else ann.__name__
        rows.append((key, tname, default, f.description or args.get(name, "")))
    return rows
