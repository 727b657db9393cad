"""The generator/training part of a recipe: pydantic models that reject unknown keys.

The recipes module composes these; ``augmentgen train RECIPE.yaml`` reads a ``TrainRecipe``.
Model architecture settings stay in each generator's own dataclass config (``model:`` is
passed through and validated there).

Example recipe::

    name: fashion-mnist
    output_dir: runs/fashion-mnist
    data: {source: fashion_mnist}
    classifier: {steps: 3000}
    generators:
      - {name: cgan, kind: cgan, model: {latent_dim: 64}, train: {steps: 6000, batch_size: 64}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from augmentgen.core.config_errors import format_validation_error
from augmentgen.core.registry import did_you_mean


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class MonitorSpec(_Strict):
    """Health monitors that run while a generator trains."""

    max_abs_loss: float = Field(
        default=1e4, gt=0, description="a loss beyond this (or NaN/inf) stops the run"
    )
    collapse_every: int = Field(default=500, ge=0, description="steps between collapse checks; 0 disables")
    collapse_per_class: int = Field(
        default=20, ge=2, description="fixed latents per class judged by the classifier"
    )
    min_label_coverage: float = Field(
        default=0.7, ge=0, le=1, description="share of classes the classifier must see"
    )
    min_diversity_ratio: float = Field(
        default=0.2, ge=0, description="within-class diversity / real diversity"
    )
    stop_on_collapse: bool = Field(
        default=False, description="end training on a collapse alarm instead of only logging it"
    )
    rt_window: int = Field(
        default=100, ge=1, description="steps averaged for the ADA overfitting heuristic r_t"
    )
    rt_target: float = Field(
        default=0.6, ge=0, le=1, description="r_t above this is logged as D overfitting (Karras et al. 2020)"
    )
    warn_after: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="share of the steps before r_t is judged and low coverage or diversity is a collapse "
        "alarm (the figures are logged from the start): early on a generator has not learned the classes "
        "yet and D tells its samples apart easily, which is neither overfitting nor collapse; a figure "
        "that had reached its minimum and falls below it is an alarm at any step",
    )

    def judge_from(self, steps: int) -> int:
        """The first step of a run of ``steps`` at which r_t is judged and low coverage or diversity is an alarm."""
        return int(steps * self.warn_after)


class TrainSpec(_Strict):
    """How one generator trains."""

    steps: int = Field(default=2000, ge=1, description="training steps, one batch each")
    batch_size: int = Field(default=64, ge=1, description="real images per step")
    lr: float | dict[str, float] | None = Field(
        default=None, description="one lr, or one per param group (g, d, vae)"
    )
    betas: tuple[float, float] | None = Field(
        default=None, description="Adam betas for every part (null: the kind's own, e.g. (0.0, 0.99) for a GAN)"
    )
    weight_decay: float = Field(default=0.0, ge=0, description="Adam weight decay (L2)")
    schedule: Literal["constant", "cosine"] = Field(
        default="constant", description="learning rate after the warm-up: constant, or cosine down to min_lr_ratio"
    )
    warmup_steps: int = Field(default=0, ge=0, description="steps of linear learning-rate warm-up from 0")
    min_lr_ratio: float = Field(
        default=0.0, ge=0, le=1, description="cosine floor as a fraction of the base lr"
    )
    grad_clip: float | None = Field(
        default=None, gt=0, description="clip each part's gradient norm to this (null: no clipping; the norm is logged)"
    )
    amp: bool = Field(
        default=False,
        description="mixed precision: autocast to amp_dtype (float16 + grad scaling needs CUDA)",
    )
    amp_dtype: Literal["float16", "bfloat16"] = Field(
        default="float16",
        description="float16: CUDA only, with grad scaling; bfloat16: CUDA or a CPU with native bf16 (AVX512-BF16, AMX), no scaling; float32 with a warning elsewhere",
    )
    seed: int = Field(
        default=0,
        description="seeds the initial weights, the batch order and every step's noise (an ensemble: same settings, other seeds)",
    )
    device: str = Field(default="auto", description="torch device: auto (CUDA when there is one, else CPU), cpu, cuda:N")
    log_every: int = Field(
        default=50, ge=1, description="steps between metrics.jsonl records (losses, accuracies, r_t, grad norms)"
    )
    sample_every: int = Field(
        default=500, ge=0, description="steps between 10x10 sample grids; 0 = only at the end"
    )
    checkpoint_every: int = Field(
        default=500, ge=0, description="steps between checkpoints; 0 = only at the end"
    )
    monitor: MonitorSpec = Field(default_factory=lambda: MonitorSpec())
    augment: list[dict[str, Any]] = Field(
        default_factory=list,
        description=(
            "classical ops (pipeline transforms) applied to every real training batch: the generator "
            "learns their variations, so use ops that keep the class (flips, small shifts); "
            "unlike a GAN's DiffAugment, which only the discriminator sees"
        ),
    )

    @field_validator("augment")
    @classmethod
    def _augment(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if v:
            from augmentgen.pipeline import Pipeline

            Pipeline.from_dict(v, where="train.augment")  # unknown ops and bad hyperparameters fail here
        return v

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, v: float | dict[str, float] | None) -> float | dict[str, float] | None:
        rates = v.values() if isinstance(v, dict) else [] if v is None else [v]
        if any(not r > 0 for r in rates):  # also NaN
            raise ValueError(f"learning rates must be > 0, got {v!r}")
        return v


ENSEMBLE_KINDS = ("cgan", "cvae")


class GeneratorSpec(_Strict):
    """One generator of a recipe: its kind, its model config and its training."""

    name: str = Field(description="names its folders (generators/NAME, shards/NAME) and its rows in reports")
    kind: str = Field(description="cgan, cvae, t2i (built-in text-to-image) or diffusers")
    model: dict[str, Any] = Field(
        default_factory=dict,
        description="the kind's model config (e.g. cgan: g_width, d_width, latent_dim, diffaugment); "
        "fields left out take the kind's defaults, unknown ones are an error",
    )
    train: TrainSpec = Field(default_factory=lambda: TrainSpec())
    sample_temperature: float | None = Field(
        default=None, gt=0, description="latent temperature for CAS samples"
    )
    ensemble: int = Field(
        default=1,
        ge=1,
        description="train this many members (train.seed, seed + 1, ...) and sample them round-robin as one generator",
    )

    @model_validator(mode="after")
    def _ensemble_kind(self) -> GeneratorSpec:
        if self.ensemble > 1 and self.kind not in ENSEMBLE_KINDS:
            raise ValueError(f"ensemble: only {ENSEMBLE_KINDS} generators train as ensembles, not {self.kind!r}")
        return self

    @model_validator(mode="after")
    def _kind_and_model(self) -> GeneratorSpec:
        """A trained kind's ``model`` is checked here, field by field, not when its training starts."""
        if getattr(self, "from_pretrained", None) is not None or self.kind == "diffusers":
            return self  # loaded from a folder / checked by the recipe's own validator
        from augmentgen.generators.checkpoint import config_from_dict

        configs = trainable_configs()
        if self.kind not in configs:
            known = sorted([*configs, "diffusers"])
            raise ValueError(f"kind: unknown generator kind {self.kind!r}{did_you_mean([self.kind], known)}; known: {known}")
        config_from_dict(configs[self.kind], self.model, f"generators.{self.name}.model")
        return self


def trainable_configs() -> dict[str, type]:
    """The model config dataclass of every generator kind trained from a recipe (diffusers is not)."""
    from augmentgen.generators.cgan import CGANConfig
    from augmentgen.generators.cvae import CVAEConfig
    from augmentgen.generators.t2i import T2IConfig

    return {"cgan": CGANConfig, "cvae": CVAEConfig, "t2i": T2IConfig}


class DataSpec(_Strict):
    """Where the real training data comes from."""

    source: Literal["fashion_mnist", "digits", "image_folder", "webdataset"] = Field(
        default="fashion_mnist",
        description="fashion_mnist (idx files; the Debian package dataset-fashion-mnist), digits "
        "(scikit-learn's 8x8), image_folder (root/CLASS/*.png|jpg), webdataset (root/*.tar, each "
        "sample an image member and an integer cls)",
    )
    root: str | None = Field(
        default=None,
        description="fashion_mnist: a folder of its four idx files (null: $AUGMENTGEN_DATA, then the "
        "Debian package's); image_folder: the folder of class subfolders; webdataset: the folder of "
        "tars (those its manifest.json lists as done, if it has one). Required for both",
    )
    test_root: str | None = Field(
        default=None,
        description="image_folder / webdataset: a second folder like root, the test set (null: a "
        "stratified test_fraction of root, seed 0)",
    )
    test_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="image_folder / webdataset without test_root: the share of root held out as the test set",
    )
    classes: list[str] | None = Field(
        default=None,
        description="webdataset: the class names, in label order (null: 0, 1, ...); image_folder names "
        "them after its subfolders",
    )
    image_size: int | None = Field(
        default=None,
        ge=8,
        description="resize every image (train and test) to this square side, a multiple of 4 (area "
        "averaging down, bilinear up); null keeps the source's size, which must then be square with a "
        "side that is a multiple of 4 (what the generators and the reference classifier take)",
    )
    mode: Literal["L", "RGB"] | None = Field(
        default=None,
        description="L (gray) or RGB: convert every image; null keeps the source's (an image folder is "
        "gray when every file is)",
    )
    n_per_class: int | None = Field(default=None, ge=1, description="train on a balanced low-data subset")
    subset_seed: int = Field(default=0, description="which images the low-data subset draws")

    @model_validator(mode="after")
    def _folder_needs_root(self) -> DataSpec:
        folders = ("image_folder", "webdataset")
        if self.source in folders and not self.root:
            raise ValueError(f"data.root is required when data.source is {self.source!r}")
        if self.test_root is not None and self.source not in folders:
            raise ValueError(f"data.test_root is for data.source 'image_folder' or 'webdataset', not {self.source!r}")
        if self.classes is not None and self.source != "webdataset":
            raise ValueError(f"data.classes is for data.source 'webdataset' (the others name their classes), not {self.source!r}")
        if self.image_size is not None and self.image_size % 4:
            raise ValueError(f"data.image_size must be a multiple of 4, got {self.image_size}")
        return self


class ClassifierSpec(_Strict):
    """The reference classifier: trained on real data (label agreement, collapse alarm) and on samples (CAS)."""

    steps: int = Field(default=4000, ge=1, description="Adam steps")
    batch_size: int = Field(default=128, ge=1, description="images per step")
    lr: float = Field(default=2e-3, gt=0, description="peak learning rate (5% linear warm-up, then cosine to 0)")
    width: int = Field(default=16, ge=4, description="channels of the first conv block (the second has twice as many)")
    dropout: float = Field(default=0.2, ge=0, lt=1, description="dropout before each linear layer")
    augment: bool = Field(default=True, description="random 2-pixel shifts while training")
    seed: int = Field(default=0, description="seeds the initial weights, the batch order, the shifts and the dropout")
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description=(
            "training steps' compute type: bfloat16 runs the forward pass under autocast (weights, loss "
            "and optimizer stay float32); auto picks it where the device computes bfloat16 natively "
            "(CUDA with bf16, a CPU with AVX512-BF16 or AMX), else float32. Test passes are float32"
        ),
    )


class EvalSpec(_Strict):
    """What is measured after training."""

    cas: bool = True
    cas_per_class: int = Field(default=6000, ge=1, description="generated training images per class for CAS")
    agreement_per_class: int = Field(default=1000, ge=1)
    grid: bool = True


class TrainRecipe(_Strict):
    """A recipe for ``augmentgen train``: data, reference classifier, generators, evaluation."""

    name: str = "generators"
    output_dir: str = "runs/generators"
    seed: int = 0
    num_threads: int | None = Field(default=None, ge=1, description="torch.set_num_threads for the run")
    data: DataSpec = Field(default_factory=lambda: DataSpec())
    classifier: ClassifierSpec | None = Field(default_factory=lambda: ClassifierSpec())
    generators: list[GeneratorSpec] = Field(default_factory=list)
    eval: EvalSpec = Field(default_factory=lambda: EvalSpec())


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML; list items by index) to a nested dict.

    Example:
        >>> apply_overrides({"a": {"b": 1}}, ["a.b=2", "a.c=[1, 2]"])
        {'a': {'b': 2, 'c': [1, 2]}}
    """
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like a.b.c=value")
        path, raw = item.split("=", 1)
        keys = path.strip().split(".")
        node: Any = data
        for k in keys[:-1]:
            if isinstance(node, list):
                if not k.isdigit() or int(k) >= len(node):
                    raise ValueError(f"override {item!r}: '{k}' is not an index of a list of {len(node)}")
                node = node[int(k)]
            else:
                node = node.setdefault(k, {})
            if not isinstance(node, (dict, list)):
                raise ValueError(f"override {item!r}: '{k}' is a value, not a section")
        last = keys[-1]
        value = yaml.safe_load(raw)
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ValueError(f"override {item!r}: '{last}' is not an index of a list of {len(node)}")
            node[int(last)] = value
        else:
            node[last] = value
    return data


def load_train_recipe(path: str | Path, overrides: list[str] | None = None) -> TrainRecipe:
    """Read a YAML train recipe, apply ``--set`` overrides, validate; errors name the file and field."""
    p = Path(path)
    try:
        text = p.read_text()
        raw, root = yaml.safe_load(text) or {}, yaml.compose(text)
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"recipe {p} cannot be read: {e}") from e
    if not isinstance(raw, dict):
        raise ValueError(f"recipe {p} must be a mapping at the top level, got {type(raw).__name__}")
    try:
        raw = apply_overrides(raw, list(overrides or []))
    except ValueError as e:
        raise ValueError(f"{p}: bad --set: {e}") from e
    try:
        return TrainRecipe.model_validate(raw)
    except ValidationError as e:
        raise ValueError(format_validation_error(e, str(p), TrainRecipe, root, list(overrides or []))) from None
