"""A JSONL prompt cache keyed by (model, instruction, class, seed), with a stable id per prompt.

Each request appends one ``run`` record (counts, timings, settings) and one ``prompt`` record
per kept prompt. A later request with the same key and at most as many prompts is answered
from the file without loading any model. Prompt ids hash the key and the text, so the same
prompt from the same request always has the same id, and a shard can name it.

Example::

    cache = PromptCache("runs/prompts/fashion-mnist-llm.jsonl")
    hit = cache.get(key, n=60)        # None, or the 60 first prompts of that request
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def request_key(**parts: Any) -> str:
    """A 16-hex-digit hash of the request's parts (model, instruction, class, seed, settings).

    Example:
        >>> request_key(model="m", cls="Bag", seed=0) == request_key(seed=0, cls="Bag", model="m")
        True
    """
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prompt_id(key: str, text: str) -> str:
    """Stable id of ``text`` written by request ``key``: ``KEY-HASH`` (16 + 1 + 8 characters)."""
    return f"{key}-{hashlib.sha256((key + chr(10) + text).encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Prompt:
    """One kept prompt and where it came from."""

    id: str
    text: str
    class_name: str
    label: int
    index: int
    score: float | None = None

    def to_record(self, key: str) -> dict[str, Any]:
        return {
            "kind": "prompt", "key": key, "id": self.id, "class": self.class_name, "label": self.label,
            "index": self.index, "text": self.text, "score": self.score,
        }  # fmt: skip


@dataclass
class PromptRun:
    """The result of one request: the kept prompts and the run record (settings and counts)."""

    key: str
    prompts: list[Prompt]
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.prompts]


class PromptCache:
    """A JSONL file of prompt requests; the last run record of a key wins.

    Args:
        path: the JSONL file (created with its folder on the first write).

    Example:
        >>> import tempfile, os
        >>> c = PromptCache(os.path.join(tempfile.mkdtemp(), "p.jsonl"))
        >>> c.put(PromptRun("k", [Prompt("k-1", "a bag", "Bag", 8, 0)], {"n": 1}))
        >>> c.get("k", 1).texts
        ['a bag']
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._runs: dict[str, PromptRun] | None = None

    def _load(self) -> dict[str, PromptRun]:
        if self._runs is not None:
            return self._runs
        runs: dict[str, PromptRun] = {}
        prompts: dict[str, list[Prompt]] = {}
        if self.path.exists():
            with self.path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                        kind, key = rec["kind"], rec["key"]
                    except (json.JSONDecodeError, KeyError, TypeError) as e:
                        raise ValueError(
                            f"prompt cache {self.path}:{lineno}: not a cache record ({e})"
                        ) from e
                    if kind == "run":
                        # a new run record of a key starts its prompt list again
                        prompts[key] = []
                        runs[key] = PromptRun(key, prompts[key], rec)
                    elif kind == "prompt":
                        if key not in prompts:
                            raise ValueError(
                                f"prompt cache {self.path}:{lineno}: prompt before its run record"
                            )
                        prompts[key].append(
                            Prompt(
                                rec["id"],
                                rec["text"],
                                rec["class"],
                                int(rec["label"]),
                                int(rec["index"]),
                                rec.get("score"),
                            )  # fmt: skip
                        )
                    else:
                        raise ValueError(f"prompt cache {self.path}:{lineno}: unknown record kind {kind!r}")
        self._runs = runs
        return runs

    def get(self, key: str, n: int) -> PromptRun | None:
        """The first ``n`` prompts of request ``key`` if the cache holds at least that many, else None.

        A request that found fewer than it asked for (``exhausted``) is a hit for any ``n`` up to
        what it asked for: asking again would find the same.
        """
        run = self._load().get(key)
        if run is None:
            return None
        if len(run.prompts) < n and not (run.record.get("exhausted") and n <= run.record.get("n", 0)):
            return None
        return PromptRun(key, run.prompts[:n], run.record)

    def put(self, run: PromptRun) -> None:
        """Append ``run`` (its run record, then its prompts) and flush to disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {**run.record, "kind": "run", "key": run.key}
        lines = [json.dumps(record, sort_keys=True)] + [json.dumps(p.to_record(run.key)) for p in run.prompts]
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._load()[run.key] = PromptRun(run.key, list(run.prompts), record)

    def runs(self) -> Iterator[PromptRun]:
        """Every request in the file (the last record of each key), in first-seen order."""
        yield from self._load().values()

    def by_class(self) -> dict[str, list[Prompt]]:
        """Every cached prompt grouped by class name (all requests of a class, in file order).

        Example:
            >>> PromptCache("runs/prompts/fashion-mnist-llm.jsonl").by_class()["Sneaker"][0].text  # doctest: +SKIP
        """
        out: dict[str, list[Prompt]] = {}
        for run in self.runs():
            for p in run.prompts:
                out.setdefault(p.class_name, []).append(p)
        return out

    def find(self, prompt_id: str) -> Prompt | None:
        """The prompt with this id, or None."""
        key = prompt_id.split("-", 1)[0]
        run = self._load().get(key)
        return next((p for p in run.prompts if p.id == prompt_id), None) if run else None
