"""Per-sample filters for writing shards: drop bad samples and count the drops per reason for the manifest.

Each filter says which rows of a batch to keep; ``FilterChain`` runs them in order, drops a
row at the first filter that rejects it, and counts ``{"seen", "kept", <reason>: n}``, also per
class. Scoring filters (``ConfidenceFilter``, ``ClipScoreFilter`` in ``filters_clip``) keep rows
whose ``score`` reaches ``threshold``; the chain puts each kept row's scores into its meta (so the
shard writer records them in the sample's provenance) and the batch's drops per reason and per
``reason:class`` into ``meta["filter_rejected"]`` (the shard manifest's ``rejected`` field).
Stateful filters (``DuplicateFilter``) remember what they saw: call ``reset()`` at each
shard start so shard ``i`` stays a pure function of ``(recipe, seed, i)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from augmentgen.checks.features import FeatureExtractor, PixelFeatures
from augmentgen.checks.functional.distances import kth_neighbour_distances, pairwise_distances
from augmentgen.checks.functional.duplicates import content_hashes, hamming_distances, perceptual_hash
from augmentgen.checks.functional.memorization import memorization_scores, train_radii
from augmentgen.core.batch import Batch


@runtime_checkable
class SampleFilter(Protocol):
    """``keep(batch) -> [B] bool``; ``reason`` names the drops in the manifest."""

    reason: str

    def keep(self, batch: Batch) -> Tensor: ...


@runtime_checkable
class ScoringFilter(Protocol):
    """A filter that keeps rows whose ``score(batch) -> [B]`` is at least ``threshold``."""

    reason: str
    score_name: str
    threshold: float

    def score(self, batch: Batch) -> Tensor: ...

    def keep(self, batch: Batch) -> Tensor: ...


REJECTED_KEY = "filter_rejected"


def _float(images: Tensor) -> Tensor:
    return images.float() / 255.0 if not images.is_floating_point() else images


class FiniteFilter:
    """Drop images with any NaN or infinite pixel.

    Example:
        >>> x = torch.zeros(2, 1, 2, 2); x[1, 0, 0, 0] = float("nan")
        >>> FiniteFilter().keep(Batch(x)).tolist()
        [True, False]
    """

    reason = "nonfinite"

    def keep(self, batch: Batch) -> Tensor:
        if not batch.image.is_floating_point():
            return torch.ones(batch.batch_size, dtype=torch.bool, device=batch.device)
        return torch.isfinite(batch.image).flatten(1).all(1)


class BlankFilter:
    """Drop blank images: pixel standard deviation at most ``min_std`` (flat black, white or grey).

    Example:
        >>> x = torch.stack([torch.zeros(1, 4, 4), torch.rand(1, 4, 4)])
        >>> BlankFilter().keep(Batch(x)).tolist()
        [False, True]
    """

    reason = "blank"

    def __init__(self, min_std: float = 2.0 / 255.0) -> None:
        if min_std < 0:
            raise ValueError(f"BlankFilter.min_std must be >= 0, got {min_std}")
        self.min_std = min_std

    def keep(self, batch: Batch) -> Tensor:
        x = torch.nan_to_num(_float(batch.image).flatten(1), nan=0.0)
        return x.std(1) > self.min_std


class ConfidenceFilter:
    """Drop samples whose conditioning label gets a classifier probability below ``threshold``.

    Args:
        classifier: ``[B, C, H, W]`` float images in [0, 1] -> ``[B, K]`` logits.
        threshold: minimum softmax probability of ``batch.label``.

    Example:
        >>> f = ConfidenceFilter(lambda x: torch.tensor([[5.0, 0.0], [0.0, 5.0]]), 0.9)
        >>> f.keep(Batch(torch.rand(2, 1, 2, 2), label=torch.tensor([0, 0]))).tolist()
        [True, False]
    """

    reason = "low_confidence"
    score_name = "confidence"

    def __init__(self, classifier: Callable[[Tensor], Tensor], threshold: float) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"ConfidenceFilter.threshold must be in [0, 1], got {threshold}")
        self.classifier, self.threshold = classifier, threshold

    def score(self, batch: Batch) -> Tensor:
        """``[B]`` softmax probability of each row's conditioning label (the prompt's class)."""
        if batch.label is None:
            raise ValueError("ConfidenceFilter needs batch.label (the conditioning labels)")
        with torch.inference_mode():
            p = self.classifier(torch.nan_to_num(_float(batch.image))).float().softmax(1)
        lab = batch.label.to(p.device).long()
        if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= p.shape[1]):
            raise ValueError(
                f"ConfidenceFilter: labels in [{int(lab.min())}, {int(lab.max())}] but the classifier has {p.shape[1]} classes"
            )
        return p.gather(1, lab[:, None])[:, 0].to(batch.device)

    def keep(self, batch: Batch) -> Tensor:
        return self.score(batch) >= self.threshold


class NearCopyFilter:
    """Drop near-copies of training samples (memorization ratio below ``threshold``, see ``MemorizationCheck``).

    Args:
        extractor: feature space (pixels by default).
        train: ``[N, D]`` training features in that space.
        threshold: ratio below which a sample is a near-copy.
    """

    reason = "near_copy"

    def __init__(
        self,
        train: Tensor,
        *,
        extractor: FeatureExtractor | None = None,
        threshold: float = 1 / 3,
        floor: float = 0.25,
    ) -> None:
        self.extractor: FeatureExtractor = extractor if extractor is not None else PixelFeatures()
        self.train = train.detach().float().cpu()
        self.radii = train_radii(self.train)
        self.threshold, self.floor = threshold, floor

    def keep(self, batch: Batch) -> Tensor:
        f = self.extractor(torch.nan_to_num(_float(batch.image))).float().cpu()
        s = memorization_scores(f, self.train, radii=self.radii, floor=self.floor)
        return (s.ratio >= self.threshold).to(batch.device)


class DuplicateFilter:
    """Drop samples that duplicate one already seen (since ``reset``): same pixels, or near in features and pHash.

    Args:
        radius: feature distance under which (with the pHash test) two samples are duplicates;
            ``from_real`` sets it from real data. 0 keeps only the exact test.
        extractor: feature space (pixels by default).
        max_hamming: pHash bits that may differ for a near duplicate.
    """

    reason = "duplicate"

    def __init__(
        self, radius: float = 0.0, *, extractor: FeatureExtractor | None = None, max_hamming: int = 8
    ) -> None:
        self.extractor: FeatureExtractor = extractor if extractor is not None else PixelFeatures()
        self.radius, self.max_hamming = radius, max_hamming
        self.reset()

    @classmethod
    def from_real(
        cls,
        real: Tensor,
        *,
        radius_ratio: float = 0.3,
        extractor: FeatureExtractor | None = None,
        max_hamming: int = 8,
    ) -> DuplicateFilter:
        """Radius = ``radius_ratio`` x median 1-NN distance of the real features."""
        med = float(kth_neighbour_distances(real.detach().float().cpu(), 1).median())
        return cls(radius_ratio * med, extractor=extractor, max_hamming=max_hamming)

    def reset(self) -> None:
        self._digests: set[str] = set()
        self._feats = torch.zeros(0, 0)
        self._hashes = torch.zeros(0, 64, dtype=torch.bool)

    def _near(self, feats: Tensor, hashes: Tensor, ref_feats: Tensor, ref_hashes: Tensor) -> Tensor:
        """``[B, R]`` bool: within the radius in features and ``max_hamming`` in pHash."""
        if self.radius <= 0 or ref_feats.shape[0] == 0:
            return torch.zeros(feats.shape[0], ref_feats.shape[0], dtype=torch.bool)
        close = pairwise_distances(feats, ref_feats, center=ref_feats.mean(0)) < self.radius
        return close & (hamming_distances(hashes, ref_hashes) <= self.max_hamming)

    def keep(self, batch: Batch) -> Tensor:
        img = torch.nan_to_num(_float(batch.image))
        digests = content_hashes(img)
        n = len(digests)
        feats = self.extractor(img).float().cpu() if self.radius > 0 else torch.zeros(n, 0)
        hashes = perceptual_hash(img).cpu()
        seen_near = self._near(feats, hashes, self._feats, self._hashes).any(1)
        within = self._near(feats, hashes, feats, hashes)
        keep = torch.ones(n, dtype=torch.bool)
        first: dict[str, int] = {}
        for i, d in enumerate(digests):
            earlier_kept = keep[:i] & within[i, :i]
            if d in self._digests or d in first or bool(seen_near[i]) or bool(earlier_kept.any()):
                keep[i] = False
            else:
                first[d] = i
        self._digests.update(first)
        if self.radius > 0:
            kept_feats = feats[keep]
            self._feats = kept_feats if self._feats.shape[0] == 0 else torch.cat([self._feats, kept_feats])
        self._hashes = torch.cat([self._hashes, hashes[keep]])
        return keep.to(batch.device)


class FilterChain:
    """Run filters in order; a row is dropped at the first filter that rejects it.

    ``counts`` accumulates ``seen``, ``kept`` and one entry per filter reason, ready for
    the shard manifest; ``class_counts`` holds the same per label. Calling the chain returns
    the kept rows with each scoring filter's per-row scores in ``meta[score_name]`` and this
    batch's drops in ``meta["filter_rejected"]`` (``reason`` and ``reason:class`` keys).

    Example:
        >>> chain = FilterChain([FiniteFilter(), BlankFilter()])
        >>> out = chain(Batch(torch.stack([torch.zeros(1, 4, 4), torch.rand(1, 4, 4)])))
        >>> out.batch_size, chain.counts
        (1, {'seen': 2, 'kept': 1, 'nonfinite': 0, 'blank': 1})
    """

    def __init__(self, filters: Sequence[SampleFilter]) -> None:
        reasons = [f.reason for f in filters]
        if len(set(reasons)) != len(reasons):
            raise ValueError(f"FilterChain: two filters share a reason: {reasons}")
        self.filters = list(filters)
        self.counts: dict[str, int] = {"seen": 0, "kept": 0, **{r: 0 for r in reasons}}
        self.class_counts: dict[int, dict[str, int]] = {}

    def reset(self) -> None:
        """Zero the counts and reset stateful filters (call at each shard start)."""
        self.counts = {k: 0 for k in self.counts}
        self.class_counts = {}
        for f in self.filters:
            reset = getattr(f, "reset", None)
            if callable(reset):
                reset()

    def rejected(self) -> dict[str, int]:
        """Drops per reason (the shard manifest's ``rejected`` field), reasons with no drop left out."""
        return {k: v for k, v in self.counts.items() if k not in ("seen", "kept") and v}

    def _run(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor], list[str | None]]:
        """Kept rows ``[B]``, scores ``{name: [B]}`` (NaN where not scored), the drop reason of each row."""
        n = batch.batch_size
        alive = torch.ones(n, dtype=torch.bool, device=batch.device)
        scores: dict[str, Tensor] = {}
        why: list[str | None] = [None] * n
        for f in self.filters:
            if not bool(alive.any()):
                break
            idx = alive.nonzero().flatten()
            sub = batch.index(idx)
            if isinstance(f, ScoringFilter):
                s = f.score(sub).detach().float().to(alive.device)
                full = scores.setdefault(f.score_name, torch.full((n,), float("nan"), device=alive.device))
                full[idx] = s
                ok = s >= f.threshold
            else:
                ok = f.keep(sub).to(alive.device)
            for r in idx[~ok].tolist():
                why[r] = f.reason
            alive[idx[~ok]] = False
        return alive, scores, why

    def _count(self, batch: Batch, alive: Tensor, why: list[str | None]) -> dict[str, int]:
        """Update ``counts`` and ``class_counts``; this batch's drops as manifest keys."""
        self.counts["seen"] += batch.batch_size
        self.counts["kept"] += int(alive.sum())
        labels = None if batch.label is None else [int(v) for v in batch.label.tolist()]
        dropped: dict[str, int] = {}
        for r, reason in enumerate(why):
            if reason is not None:
                self.counts[reason] += 1
                dropped[reason] = dropped.get(reason, 0) + 1
            if labels is None:
                continue
            cc = self.class_counts.setdefault(labels[r], {"seen": 0, "kept": 0})
            cc["seen"] += 1
            if reason is None:
                cc["kept"] += 1
            else:
                cc[reason] = cc.get(reason, 0) + 1
                key = f"{reason}:{labels[r]}"
                dropped[key] = dropped.get(key, 0) + 1
        return dropped

    def keep_mask(self, batch: Batch) -> Tensor:
        """``[B]`` bool of rows that pass every filter; updates ``counts``."""
        alive, _, why = self._run(batch)
        self._count(batch, alive, why)
        return alive

    def __call__(self, batch: Batch) -> Batch:
        alive, scores, why = self._run(batch)
        dropped = self._count(batch, alive, why)
        meta = dict(batch.meta)
        for name, s in scores.items():
            meta[name] = [None if v != v else round(float(v), 6) for v in s.cpu().tolist()]  # NaN: not scored
        meta[REJECTED_KEY] = dropped
        return batch.replace(meta=meta).index(alive)
