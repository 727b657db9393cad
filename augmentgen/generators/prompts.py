"""Prompts per class: class vocabularies and ``TemplatePrompts``, a seeded grammar over them.

A class is just a name with a description, synonyms, attributes and contexts, so the same
code writes prompts for clothing classes, animal species or lighting conditions of one scene.
``LLMPrompts`` (in ``prompts_llm``) writes them with a language model instead.

Example::

    tp = TemplatePrompts.fashion_mnist()
    tp.prompts("Sneaker", 3, seed=0)
    # ['a photo of a grey canvas trainer', 'a leather sneaker on a plain background', ...]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ClassVocab:
    """The words one class is described with.

    Args:
        name: the class name as the data set spells it (``"Ankle boot"``).
        description: one sentence saying what the class is; the on-topic reference for LLM prompts.
        synonyms: nouns that may stand for the class (the name is always one of them).
        attributes: adjectives or short phrases that fit the class (``"leather"``, ``"high-top"``).
        contexts: where or how it is seen (``"on a white background"``, ``"folded on a shelf"``).
        article: ``"a"`` (a/an as the next word needs), ``"a pair of"`` (trousers), ``""`` (fog).

    Example:
        >>> ClassVocab("fog", "a street scene in thick fog", article="").nouns
        ('fog',)
    """

    name: str
    description: str = ""
    synonyms: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    contexts: tuple[str, ...] = ()
    article: str = "a"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"ClassVocab.name must be a non-empty string, got {self.name!r}")
        for f in ("synonyms", "attributes", "contexts"):
            v = getattr(self, f)
            if isinstance(v, str) or not all(isinstance(s, str) and s.strip() for s in v):
                raise ValueError(
                    f"ClassVocab {self.name!r}: {f} must be a tuple of non-empty strings, got {v!r}"
                )
            object.__setattr__(self, f, tuple(v))

    @property
    def nouns(self) -> tuple[str, ...]:
        """The synonyms, or the name (lower-cased, ``/`` read as ``or``) when there are none."""
        if self.synonyms:
            return tuple(dict.fromkeys(s.lower() for s in self.synonyms))
        return (self.name.replace("/", " or ").lower(),)

    @property
    def text(self) -> str:
        """The description, or the name when there is none."""
        return self.description or self.name


_COLORS = (
    "black", "white", "grey", "dark grey", "light grey", "navy", "beige", "red", "blue",
    "green", "brown", "striped", "patterned", "plain", "faded",
)  # fmt: skip
_VIEWS = (
    "on a plain background", "on a white background", "in a product photo", "seen from the front",
    "in a catalogue picture", "photographed flat", "in soft light", "in a close-up",
)  # fmt: skip

FASHION_MNIST_VOCAB: tuple[ClassVocab, ...] = (
    ClassVocab("T-shirt/top", "a T-shirt or top, a short-sleeved casual upper-body garment",
               ("t-shirt", "tee", "top", "tank top", "crew-neck tee"),
               ("cotton", "short-sleeved", "sleeveless", "crew-neck", "v-neck", "loose", "fitted", "printed"),
               ("folded on a table", "laid flat", "on a hanger")),
    ClassVocab("Trouser", "a pair of trousers, long garments covering both legs",
               ("trousers", "pants", "jeans", "slacks", "chinos"),
               ("denim", "straight-leg", "wide-leg", "slim", "pleated", "wool", "cotton", "high-waisted"),
               ("laid flat", "folded in half", "hanging from a rail"), article="a pair of"),
    ClassVocab("Pullover", "a pullover, a long-sleeved knitted sweater pulled over the head",
               ("pullover", "sweater", "jumper", "knit sweater", "sweatshirt"),
               ("knitted", "woollen", "long-sleeved", "chunky", "cable-knit", "ribbed", "turtleneck", "cosy"),
               ("folded on a shelf", "laid flat", "on a hanger")),
    ClassVocab("Dress", "a dress, a one-piece garment with a skirt for women",
               ("dress", "gown", "sundress", "midi dress", "shift dress"),
               ("sleeveless", "short", "long", "flowing", "belted", "summer", "evening", "pleated"),
               ("on a mannequin", "on a hanger", "laid flat")),
    ClassVocab("Coat", "a coat, a long-sleeved outer garment worn over other clothes",
               ("coat", "jacket", "overcoat", "parka", "trench coat"),
               ("buttoned", "zip-up", "hooded", "padded", "wool", "long", "double-breasted", "winter"),
               ("on a hanger", "laid flat", "on a coat rack")),
    ClassVocab("Sandal", "a sandal, an open shoe held to the foot by straps",
               ("sandal", "flip-flop", "strappy sandal", "slide", "open-toe shoe"),
               ("strappy", "flat", "leather", "open-toe", "summer", "buckled", "heeled", "woven"),
               ("seen from the side", "on a plain floor", "in a shoe shop")),
    ClassVocab("Shirt", "a shirt, a collared upper-body garment with buttons down the front",
               ("shirt", "button-up shirt", "blouse", "dress shirt", "flannel shirt"),
               ("collared", "button-down", "long-sleeved", "checked", "linen", "oxford", "formal", "casual"),
               ("folded on a table", "on a hanger", "laid flat")),
    ClassVocab("Sneaker", "a sneaker, a low athletic shoe with a rubber sole",
               ("sneaker", "trainer", "running shoe", "athletic shoe", "canvas shoe"),
               ("canvas", "leather", "low-top", "lace-up", "sporty", "chunky-soled", "mesh", "slip-on"),
               ("seen from the side", "on a plain floor", "in a shoe shop")),
    ClassVocab("Bag", "a bag, a container with handles or a strap for carrying things",
               ("bag", "handbag", "tote bag", "shoulder bag", "purse"),
               ("leather", "canvas", "quilted", "structured", "small", "large", "zippered", "woven"),
               ("on a table", "standing upright", "hanging from a hook")),
    ClassVocab("Ankle boot", "an ankle boot, a shoe that covers the foot and reaches the ankle",
               ("ankle boot", "boot", "chelsea boot", "bootie", "short boot"),
               ("leather", "suede", "heeled", "lace-up", "zip-up", "chunky", "pointed", "block-heeled"),
               ("seen from the side", "on a plain floor", "in a shoe shop")),
)  # fmt: skip

# {a}: article, {attr}: 0-2 attributes, {noun}: a synonym, {ctx}: a context or view
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "{a} {attr} {noun}",
    "a photo of {a} {attr} {noun}",
    "{a} {attr} {noun} {ctx}",
    "a photo of {a} {attr} {noun} {ctx}",
    "{a} {noun}, {attr}, {ctx}",
    "a picture of {a} {attr} {noun}",
    "a grayscale image of {a} {attr} {noun}",
    "{a} {attr} {noun}, {ctx}",
)


def _article(kind: str, word: str) -> str:
    if kind != "a":
        return kind
    return "an" if word[:1].lower() in "aeiou" else "a"


def _squash(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+,", ",", text)
    text = re.sub(r",\s*,", ",", text)
    return text.strip(" ,")


@dataclass
class TemplatePrompts:
    """A seeded grammar of prompts per class: templates filled with synonyms, attributes and contexts.

    Deterministic: ``prompts(c, n, seed)`` depends only on the vocabulary, ``c``, ``seed`` and
    ``n``, and the first ``k`` prompts of a request for ``n > k`` equal those of a request for ``k``.
    Repeats within one request are avoided while the grammar has unused sentences.

    Args:
        classes: the class vocabularies (index = label), or class names (empty vocabularies).
        templates: format strings with ``{a}``, ``{attr}``, ``{noun}``, ``{ctx}``.
        colors: colours shared by every class; at most one per prompt, in half of them.
        views: contexts shared by every class.
        max_attributes: at most this many attributes (colour included) per prompt.

    Example:
        >>> tp = TemplatePrompts.fashion_mnist()
        >>> tp.prompts("Sneaker", 2, seed=0) == tp.prompts(7, 2, seed=0)
        True
    """

    classes: Sequence[ClassVocab | str]
    templates: Sequence[str] = DEFAULT_TEMPLATES
    colors: Sequence[str] = ()
    views: Sequence[str] = ()
    max_attributes: int = 2
    _vocab: tuple[ClassVocab, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._vocab = tuple(c if isinstance(c, ClassVocab) else ClassVocab(c) for c in self.classes)
        if not self._vocab:
            raise ValueError("TemplatePrompts: classes is empty")
        names = [v.name for v in self._vocab]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"TemplatePrompts: class names must be unique, repeated {dup}")
        if not self.templates:
            raise ValueError("TemplatePrompts: templates is empty")
        for t in self.templates:
            if "{noun}" not in t:
                raise ValueError(f"TemplatePrompts: template {t!r} has no {{noun}} slot")
        if self.max_attributes < 0:
            raise ValueError(f"TemplatePrompts: max_attributes must be >= 0, got {self.max_attributes}")

    @property
    def vocab(self) -> tuple[ClassVocab, ...]:
        """The class vocabularies, index = label."""
        return self._vocab

    @property
    def class_names(self) -> list[str]:
        return [v.name for v in self._vocab]

    def index(self, cls: str | int) -> int:
        """Label of ``cls`` (a class name, case-insensitive, or a label)."""
        if isinstance(cls, bool) or not isinstance(cls, (int, np.integer, str)):
            raise TypeError(f"class must be a name or a label, got {type(cls).__name__} {cls!r}")
        if isinstance(cls, str):
            low = [n.lower() for n in self.class_names]
            if cls.lower() not in low:
                raise ValueError(f"unknown class {cls!r}; classes are {self.class_names}")
            return low.index(cls.lower())
        if not 0 <= int(cls) < len(self._vocab):
            raise ValueError(f"class label {cls} out of range [0, {len(self._vocab)})")
        return int(cls)

    def describe(self, cls: str | int) -> str:
        """The class description (its name when it has none)."""
        return self._vocab[self.index(cls)].text

    def _one(self, v: ClassVocab, rng: np.random.Generator) -> str:
        template = self.templates[int(rng.integers(len(self.templates)))]
        noun = v.nouns[int(rng.integers(len(v.nouns)))]
        attrs: list[str] = []
        if self.colors and self.max_attributes > 0 and rng.random() < 0.5:
            # colours come first ("a red leather bag"), as English orders adjectives
            attrs.append(self.colors[int(rng.integers(len(self.colors)))])
        room = self.max_attributes - len(attrs)
        k = min(int(rng.integers(room + 1)), len(v.attributes)) if v.attributes and room > 0 else 0
        attrs += [v.attributes[int(i)] for i in rng.choice(len(v.attributes), size=k, replace=False)]
        attr = " ".join(attrs)
        ctx_pool = list(v.contexts) + list(self.views)
        ctx = ctx_pool[int(rng.integers(len(ctx_pool)))] if ctx_pool else ""
        # the article agrees with the word right after it: the first attribute, or else the noun
        first = attr if "{a} {attr}" in template and attr else noun
        return _squash(template.format(a=_article(v.article, first), attr=attr, noun=noun, ctx=ctx))

    def prompts(self, cls: str | int, n: int, seed: int = 0) -> list[str]:
        """``n`` prompts for class ``cls`` drawn from the grammar under ``seed``.

        Args:
            cls: class name or label.
            n: how many prompts.
            seed: the draw; the same seed gives the same prompts.

        Example:
            >>> len(TemplatePrompts(["fog", "rain"]).prompts("rain", 4, seed=1))
            4
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
        label = self.index(cls)
        v = self._vocab[label]
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, label, 0x7E])
        out: list[str] = []
        seen: set[str] = set()
        for _ in range(int(n)):
            text = self._one(v, rng)
            for _retry in range(20):  # a few redraws avoid repeats while the grammar has room
                if text not in seen:
                    break
                text = self._one(v, rng)
            seen.add(text)
            out.append(text)
        return out

    @classmethod
    def fashion_mnist(cls, **kw: object) -> TemplatePrompts:
        """The built-in Fashion-MNIST grammar: its ten class vocabularies, shared colours and views."""
        args: dict[str, object] = {"classes": FASHION_MNIST_VOCAB, "colors": _COLORS, "views": _VIEWS}
        args.update(kw)
        return cls(**args)  # type: ignore[arg-type]

    def captions(self, labels: Sequence[int] | np.ndarray, seed: int = 0) -> list[str]:
        """One prompt per label (for captioning a labelled data set); row ``i`` depends on ``(seed, i)``.

        Example:
            >>> len(TemplatePrompts.fashion_mnist().captions([0, 7, 7], seed=0))
            3
        """
        out = []
        for i, y in enumerate(np.asarray(labels).reshape(-1).tolist()):
            label = self.index(int(y))
            rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, label, 0xCA, i])
            out.append(self._one(self._vocab[label], rng))
        return out
