"""Turning raw LLM text into prompts: split into lines, clean, bound the length, dedupe, check the topic.

Pure functions on strings and embedding matrices; ``LLMPrompts`` chains them. Every dropped
line is counted under a reason, so a run can say what the filters cost.

Example::

    lines = parse_lines("Here are captions:\\n1. A red sneaker.\\n2) \\"A white trainer\\"")
    # ['A red sneaker', 'A white trainer']
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

DROP_REASONS = (
    "incomplete", "too_short", "too_long", "duplicate", "off_topic", "other_class", "near_duplicate",
)  # fmt: skip
# a caption never ends on one of these; a line that does was cut off mid-sentence
_DANGLING = frozenset(
    "a an the and or but of in on at to for with by from as is are was were be been its their his her "
    "your my our this that these those which who whose than very so into onto over under".split()
)

_LEAD = re.compile(
    r"""^\s*(?:
        (?:[-*•·–—>]+\s*)                                  # bullets
      | (?:\(?\d{1,3}\s*[.):\]]\s*)                         # 1.  1)  (1)  1:
      | (?:\(?[a-zA-Z]\s*[.)]\s+)                           # a.  b)
      | (?:(?:prompt|caption|description|example|option)\s*\#?\d*\s*[:.\-]\s*)  # Caption 2:
    )+""",
    re.IGNORECASE | re.VERBOSE,
)
_QUOTES = "\"'“”‘’«»`"
_PREAMBLE = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|here(?:'s| is| are)|below (?:is|are)|i hope|let me know|note:)\b",
    re.IGNORECASE,
)
_MARKUP = re.compile(r"\*\*|__|<\|?[a-z_]+\|?>|\[/?[a-z]+\]", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def clean_line(line: str) -> str:
    """Strip numbering, bullets, markup, wrapping quotes and trailing punctuation from one line.

    Example:
        >>> clean_line('  3) **"A faded denim jacket."**  ')
        'A faded denim jacket'
    """
    text = unicodedata.normalize("NFKC", line)
    # control characters and U+FFFD (bytes that did not decode) never belong in a prompt
    text = "".join(" " if unicodedata.category(c)[0] == "C" or c == "\ufffd" else c for c in text)
    text = _MARKUP.sub("", text)
    text = _LEAD.sub("", text).strip()
    for _ in range(3):  # nested wrappers such as '"(a red bag)"'
        before = text
        text = text.strip().strip(_QUOTES).strip()
        if len(text) > 1 and text[0] in "([" and text[-1] in ")]":
            text = text[1:-1]
        text = text.rstrip(".;:!,").strip()
        if text == before:
            break
    return re.sub(r"\s+", " ", text)


def parse_lines(raw: str, *, split_sentences: bool = True) -> list[str]:
    """One candidate prompt per non-empty line of ``raw`` (and per sentence when asked), cleaned.

    Preambles ("Here are five captions:"), headers ending in ``:`` and sign-offs are dropped.

    Args:
        raw: the model's reply.
        split_sentences: a line of several sentences gives one candidate per sentence
            (small models ignore "one per line" and write paragraphs).

    Example:
        >>> parse_lines("Sure! Here are 2:\\n- A black coat. A long wool parka.\\n")
        ['A black coat', 'A long wool parka']
    """
    if not isinstance(raw, str):
        raise TypeError(f"parse_lines: raw must be a str, got {type(raw).__name__}")
    out: list[str] = []
    for line in raw.splitlines():
        stripped = line.strip()
        if not stripped or stripped.endswith(":") or _PREAMBLE.match(_LEAD.sub("", stripped)):
            continue
        parts = _SENTENCE_END.split(stripped) if split_sentences else [stripped]
        for part in parts:
            text = clean_line(part)
            if any(c.isalpha() for c in text) and not _PREAMBLE.match(text):
                out.append(text)
    return out


def normalize(text: str) -> str:
    """Lower-case, punctuation-free, single-spaced: the key for exact duplicates.

    Example:
        >>> normalize("A Red, red  BAG!") == normalize("a red red bag")
        True
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s-]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def length_reason(text: str, *, min_words: int, max_words: int) -> str | None:
    """``"too_short"``/``"too_long"`` when ``text`` has fewer/more words than allowed,
    ``"incomplete"`` when it ends on a function word ("The fabric is"), else None.

    Example:
        >>> length_reason("The shoes were", min_words=2, max_words=9)
        'incomplete'
    """
    words = text.split()
    n = len(words)
    if words and words[-1].lower().strip(",;:-") in _DANGLING:
        return "incomplete"
    if n < min_words:
        return "too_short"
    if n > max_words:
        return "too_long"
    return None


@dataclass
class FilterStats:
    """Counts of candidates seen, kept and dropped per reason, with a few dropped examples."""

    candidates: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, reason: str, text: str, keep_examples: int = 3) -> None:
        self.dropped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < keep_examples:
            ex.append(text)

    def as_dict(self) -> dict[str, object]:
        return {
            "candidates": self.candidates,
            "kept": self.kept,
            "dropped": {r: int(self.dropped.get(r, 0)) for r in DROP_REASONS},
            "dropped_examples": self.examples,
        }


@dataclass
class PromptFilter:
    """Stateful filter of one class's candidates: length, exact and near duplicates, topic.

    Candidates pass in order; the first of a group of near duplicates is kept, so the result
    does not depend on how candidates were batched.

    Args:
        reference: unit embeddings of every class description, ``[K, D]``.
        label: which row of ``reference`` is this class.
        min_words, max_words: length bounds in words.
        dedupe_threshold: drop a line whose cosine similarity to a kept line is at least this
            (None: exact duplicates only).
        on_topic_threshold: drop a line whose similarity to its class description is below
            this (None: no check).
        nearest_class: also drop lines that read as another class: closer to another class's
            description than to their own, or, with a ``bank``, whose ``knn`` nearest bank texts
            do not vote for their class by a strict plurality.
        bank: unit embeddings of reference texts of every class (e.g. template captions), ``[M, D]``;
            a k-NN vote over many phrasings of each class is a sharper nearest-class test than
            one description per class (of 194 SmolLM2 Fashion-MNIST prompts that passed the
            description test, a 10-NN vote over 100 template captions per class rejects 29; the
            t2i model rendered those as their class 37% of the time, the other 165 85%;
            ``benchmarks/prompted.md``).
        bank_labels: class of every bank row, ``[M]``.
        knn: neighbours that vote (``<= M``).
        min_vote: least share of the ``knn`` votes the line's class must hold besides the plurality
            (0: plurality only). Lines that read as "a stylish piece of clothing" split their
            votes; on 187 held-out SmolLM2 prompts a share of 0.7 kept 152 whose images matched
            their class 87.4% of the time, against 83.6% for all 187 (``benchmarks/prompted.md``).

    Shape:
        reference: ``[K, D]``; ``bank``: ``[M, D]``; ``encode`` returns ``[N, D]``.

    Example:
        >>> ref = torch.eye(2)
        >>> f = PromptFilter(ref, 0, min_words=1, max_words=5, dedupe_threshold=0.9)
        >>> f.add(["a b", "A b!", "c d", "e"], lambda t: torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
        [('a b', 1.0)]
    """

    reference: Tensor
    label: int
    min_words: int = 3
    max_words: int = 24
    dedupe_threshold: float | None = 0.92
    on_topic_threshold: float | None = 0.3
    nearest_class: bool = True
    bank: Tensor | None = None
    bank_labels: Tensor | None = None
    knn: int = 10
    min_vote: float = 0.0
    stats: FilterStats = field(default_factory=FilterStats)
    kept_text: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, repr=False)
    _kept_emb: list[Tensor] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.reference.ndim != 2 or not 0 <= self.label < self.reference.shape[0]:
            raise ValueError(
                f"PromptFilter: reference must be [K, D] with label in [0, K), "
                f"got shape {tuple(self.reference.shape)} and label {self.label}"
            )
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError(
                f"PromptFilter: need 1 <= min_words <= max_words, got {self.min_words}, {self.max_words}"
            )
        if (self.bank is None) != (self.bank_labels is None):
            raise ValueError("PromptFilter: bank and bank_labels go together")
        if self.bank is not None and self.bank_labels is not None:
            m = self.bank.shape[0]
            if self.bank.ndim != 2 or self.bank.shape[1] != self.reference.shape[1]:
                raise ValueError(
                    f"PromptFilter: bank must be [M, {self.reference.shape[1]}] like the reference, "
                    f"got shape {tuple(self.bank.shape)}"
                )
            if tuple(self.bank_labels.shape) != (m,):
                raise ValueError(f"PromptFilter: bank_labels must be [{m}], got {tuple(self.bank_labels.shape)}")
            if not 1 <= self.knn <= m:
                raise ValueError(f"PromptFilter: knn must be in [1, {m}] (bank rows), got {self.knn}")
            if int(self.bank_labels.min()) < 0 or int(self.bank_labels.max()) >= self.reference.shape[0]:
                raise ValueError(f"PromptFilter: bank_labels must be in [0, {self.reference.shape[0]})")
        if not 0.0 <= self.min_vote <= 1.0:
            raise ValueError(f"PromptFilter: min_vote must be a share in [0, 1], got {self.min_vote}")
        for name in ("dedupe_threshold", "on_topic_threshold"):
            v = getattr(self, name)
            if v is not None and not -1.0 <= v <= 1.0:
                raise ValueError(f"PromptFilter: {name} must be a cosine similarity in [-1, 1], got {v}")

    def add(
        self, texts: Sequence[str], encode: Callable[[list[str]], Tensor], *, cut: Sequence[str] = ()
    ) -> list[tuple[str, float]]:
        """Filter candidates in order; return ``(text, topic score)`` of the ones kept.

        Length and exact-duplicate checks run first, so only survivors are embedded (one
        ``encode`` call per ``add``).

        Args:
            texts: cleaned candidate lines.
            encode: texts -> unit embeddings ``[N, D]`` (a ``TextEncoder.encode``).
            cut: lines known to be cut off (the last line of a reply that hit the token limit).
        """
        cut_lines = set(cut)
        fresh: list[str] = []
        for t in texts:
            self.stats.candidates += 1
            if t in cut_lines:
                self.stats.drop("incomplete", t)
                continue
            reason = length_reason(t, min_words=self.min_words, max_words=self.max_words)
            key = normalize(t)
            if reason is None and key in self._seen:
                reason = "duplicate"
            if reason is not None:
                self.stats.drop(reason, t)
                continue
            self._seen.add(key)
            fresh.append(t)
        if not fresh:
            return []
        emb = encode(fresh).float()
        if emb.shape != (len(fresh), self.reference.shape[1]):
            raise ValueError(
                f"PromptFilter: encode gave shape {tuple(emb.shape)} for {len(fresh)} texts, "
                f"expected [{len(fresh)}, {self.reference.shape[1]}] like the reference"
            )
        sims = emb @ self.reference.float().T  # [N, K]
        elsewhere = self._reads_as_other_class(emb, sims) if self.nearest_class else [False] * len(fresh)
        kept: list[tuple[str, float]] = []
        for i, t in enumerate(fresh):
            score = float(sims[i, self.label])
            if self.on_topic_threshold is not None and score < self.on_topic_threshold:
                self.stats.drop("off_topic", t)
                continue
            if elsewhere[i]:
                self.stats.drop("other_class", t)
                continue
            if self.dedupe_threshold is not None and self._kept_emb:
                near = float((torch.stack(self._kept_emb) @ emb[i]).max())
                if near >= self.dedupe_threshold:
                    self.stats.drop("near_duplicate", t)
                    continue
            self._kept_emb.append(emb[i])
            self.kept_text.append(t)
            self.stats.kept += 1
            kept.append((t, score))
        return kept

    def _reads_as_other_class(self, emb: Tensor, sims: Tensor) -> list[bool]:
        """Per line: does it read as another class (description argmax, or the bank's k-NN vote)?"""
        if self.bank is None or self.bank_labels is None:
            return [int(r.argmax()) != self.label for r in sims]
        near = (emb @ self.bank.float().T).topk(self.knn, dim=1).indices  # [N, knn]
        votes = torch.zeros(emb.shape[0], self.reference.shape[0], dtype=torch.long)
        votes.scatter_add_(1, self.bank_labels.long()[near], torch.ones_like(near))
        own = votes[:, self.label].clone()
        votes[:, self.label] = -1
        weak = own < math.ceil(self.min_vote * self.knn - 1e-9)
        return ((votes.max(1).values >= own) | weak).tolist()
