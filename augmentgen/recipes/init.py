"""``augmentgen init``: a first recipe for your own data, drafted from what the data holds.

Looks at a folder of class subfolders (or a ``train/`` + ``test/`` pair of them) or a folder of
WebDataset tars: the classes, the images per class, their sizes and colours. Writes a commented
recipe with the ``data`` section filled in, an image size the generators take, and the built-in
recipes' defaults for the rest; the draft is validated as a recipe before it is returned.
"""

from __future__ import annotations

import statistics
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from augmentgen.data.sources import IMAGE_SUFFIXES

SIDE_CAP = 64  # generators and the reference classifier on a CPU: larger sides cost minutes a step count


@dataclass
class DataSurvey:
    """What ``survey`` found: the layout, classes and counts, and the sizes of a sample of images."""

    source: str  # image_folder | webdataset
    root: Path
    test_root: Path | None
    classes: list[str]
    counts: list[int]
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (H, W) of the images looked at
    color: bool = False

    @property
    def side(self) -> int | None:
        """The one square side every image looked at has, when it suits the models as it is."""
        if len(set(self.sizes)) == 1:
            h, w = self.sizes[0]
            if h == w and h % 4 == 0 and h >= 8:
                return h
        return None

    def image_size(self) -> int | None:
        """None when the images can be used as they are, else a square side: the median short side
        rounded to a multiple of 4, between 8 and ``SIDE_CAP``."""
        if self.side is not None and self.side <= SIDE_CAP:
            return None
        short = statistics.median(min(h, w) for h, w in self.sizes)
        return int(min(SIDE_CAP, max(8, 4 * round(short / 4))))


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _split_pair(root: Path) -> tuple[Path, Path] | None:
    """``root/train`` and ``root/test`` (or ``val``), each of class subfolders."""
    names = {p.name.lower(): p for p in _class_dirs(root)}
    train = names.get("train")
    test = names.get("test") or names.get("val") or names.get("valid") or names.get("validation")
    if train is not None and test is not None and _class_dirs(train) and _class_dirs(test):
        return train, test
    return None


def survey(path: str | Path, *, per_class: int = 20) -> DataSurvey:
    """Look at a data folder: its layout, classes, counts, and the size and colour of ``per_class`` images a class.

    Example:
        >>> survey("photos/").classes  # doctest: +SKIP
        ['cat', 'dog']
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"init: {root} is not a folder")
    if any(root.glob("*.tar")) or (root / "manifest.json").is_file():
        return _survey_tars(root, per_class)
    test_root = None
    pair = _split_pair(root)
    train_root = root
    if pair is not None:
        train_root, test_root = pair
    dirs = _class_dirs(train_root)
    files = {d.name: _images_in(d) for d in dirs}
    if not any(files.values()):
        raise ValueError(
            f"init: {root} holds neither *.tar shards nor class subfolders of images ({', '.join(IMAGE_SUFFIXES)})"
        )
    empty = sorted(k for k, v in files.items() if not v)
    if empty:  # the recipe's loader refuses them (a label no image stands for): say so now, not at run time
        raise ValueError(
            f"init: class folder(s) {empty} under {train_root} hold no images ({', '.join(IMAGE_SUFFIXES)}); "
            "add images or remove the folder(s)"
        )
    if test_root is not None:
        missing = sorted(set(files) - {d.name for d in _class_dirs(test_root)})
        if missing:
            raise ValueError(f"init: {test_root} lacks the class folders {missing} that {train_root} has")
    s = DataSurvey("image_folder", train_root, test_root, sorted(files), [len(files[c]) for c in sorted(files)])
    for c in s.classes:
        for f in files[c][:per_class]:
            try:
                with Image.open(f) as im:
                    s.sizes.append((im.height, im.width))
                    s.color = s.color or im.mode not in ("L", "LA", "1", "I", "I;16", "F")
            except (UnidentifiedImageError, OSError) as e:
                raise ValueError(f"init: cannot read image {f}: {e}") from e
    return s


def _survey_tars(root: Path, per_class: int) -> DataSurvey:
    from augmentgen.data.webdataset import decode_image_bytes, labelled_samples, shard_files

    files = shard_files(root)
    if not files:
        raise ValueError(f"init: {root}: no shards (*.tar, or done entries in manifest.json)")
    counts: Counter[int] = Counter()
    s = DataSurvey("webdataset", root, None, [], [])
    for key, label, ext, data in labelled_samples(files):
        counts[label] += 1
        if counts[label] <= per_class:  # sizes and colour from the first images of each class
            img = decode_image_bytes(data, f"{key}.{ext}")
            s.sizes.append((img.shape[0], img.shape[1]))
            s.color = s.color or img.shape[2] == 3
    n = max(counts) + 1
    s.classes = [str(i) for i in range(n)]
    s.counts = [counts.get(i, 0) for i in range(n)]
    return s


def _q(path: Path) -> str:
    text = str(path)
    return f'"{text}"' if any(ch in text for ch in ' :#{}[],&*!|>"%@`') else text


def draft_recipe(s: DataSurvey, *, name: str) -> str:
    """The recipe text for survey ``s``: commented YAML, validated as a recipe before it is returned."""
    from augmentgen.recipes.load import load_recipe

    size = s.image_size()
    side = size or s.side or 8
    smallest = min(s.counts)
    sizes = Counter(f"{w}x{h}" for h, w in s.sizes)
    seen = ", ".join(f"{k} ({v})" for k, v in sizes.most_common(4)) + (", ..." if len(sizes) > 4 else "")
    lines = [
        f"# {name}: drafted by `augmentgen init` from {s.root}",
        f"# {len(s.classes)} classes, {sum(s.counts)} images ({smallest} in the smallest class); "
        f"{'colour' if s.color else 'gray'} images, sizes seen: {seen}.",
        "# Run it:  augmentgen run THIS.yaml --out runs/NAME   (then open runs/NAME/report.html)",
        "# Cost: the steps below do not depend on how many images there are, but on their size; a draft",
        "# for a 32 px RGB folder (4 classes, 240 images) ran in 8 min 11 s wall, 771 s user CPU on a 2-core",
        "# CPU (2026-11-30: train 248 s, checks 15 s, evaluation 222 s); larger images cost more a step.",
        "# Every field: docs/recipes.md or `augmentgen show --reference`; --set a.b=value overrides any.",
        f"name: {name}",
        "seed: 0",
        "num_threads: 1",
        "data:",
        f"  source: {s.source}",
        f"  root: {_q(s.root)}",
    ]
    if s.test_root is not None:
        lines.append(f"  test_root: {_q(s.test_root)}      # the test set: evaluation accuracy and the checks' real side")
    else:
        lines.append("  test_fraction: 0.2            # held out, stratified, as the test set (or give test_root)")
    if size is not None:
        why = "one square side the generators take" if s.side is None else f"{s.side} px is slow on a CPU"
        lines.append(f"  image_size: {size}               # every image resized to {size}x{size}: {why}")
    else:
        lines.append(f"  image_size: null              # the images are {side}x{side} already")
    if s.source == "webdataset":
        lines.append(f"  classes: {s.classes}     # the names of labels 0..{len(s.classes) - 1}: rename them")
    lines += [
        "  n_per_class: null             # all images; a number trains everything on that many a class",
        "classifier: {steps: 1500, batch_size: 64, width: 16}   # the reference classifier (label checks, arms)",
        "pipeline:                      # classical ops: on the shards and the classical evaluation arms",
        "  transforms:",
        "    - {name: horizontal_flip, p: 0.5}",
        "    - {name: affine, degrees: [-8, 8], translate: [0.08, 0.08], scale: [0.9, 1.1], p: 0.8}",
        "generators:",
        "  - name: cvae",
        "    kind: cvae",
        "    model: {width: 16, latent_dim: 16, hidden: 128, kl_warmup_steps: 300}",
        "    train: {steps: 3000, batch_size: 64, sample_every: 0, checkpoint_every: 300, log_every: 50,",
        "            monitor: {collapse_every: 500}}",
        "  - name: cgan",
        "    kind: cgan",
        "    # DiffAugment off: a width-16 discriminator does not overfit 500 images, and the cGAN drew",
        "    # better without it there (label agreement 0.845 against 0.744, benchmarks/generators.md)",
        "    model: {g_width: 16, d_width: 16, latent_dim: 64, embed_dim: 32, diffaugment: \"\"}",
        "    train: {steps: 3000, batch_size: 64, sample_every: 0, checkpoint_every: 300, log_every: 50,",
        "            amp: true, amp_dtype: bfloat16, monitor: {collapse_every: 500}}",
        "filters: {finite: true, blank_std: 0.0078}",
        f"shards: {{name: {name}, count: 4, size: 1000, format: png, seed: 0, batch_size: 250}}",
        "checks:",
        "  features: effnet_lite0        # offline ImageNet EfficientNet-Lite0 features",
        "  n_real: 2000",
        "  n_generated: 2000",
        "  gates: {}                     # e.g. {label_agreement: \">= 0.6\", duplicate_fraction: \"<= 0.2\"} once",
        "                                # the first report shows what these generators reach",
        "evaluate:",
        "  arms: [real, real_classical, real_classical_synthetic, synthetic]",
        "  seeds: [0, 1]",
        "  steps: 3000                   # classifier steps per arm and seed",
        "  classical_copies: 2",
        "  synthetic_per_class: 300",
    ]
    text = "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"{name}.yaml"
        p.write_text(text)
        load_recipe(p)  # never hand out a recipe that does not load
    return text
