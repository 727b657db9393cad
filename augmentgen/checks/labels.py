"""Label checks with a real-trained reference classifier: agreement with the conditioning labels, confusion, Inception Score."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from augmentgen.checks.base import make_result
from augmentgen.checks.functional.labels import confusion_matrix, inception_score, label_agreement
from augmentgen.checks.gates import Gate, apply_gates, parse_gates
from augmentgen.core.batch import Batch
from augmentgen.core.check import CheckResult
from augmentgen.core.registry import CHECKS


@CHECKS.register("labels")
class LabelCheck:
    """Does the classifier see the class the generator was asked for?

    Figures: ``label_agreement`` (main), ``label_agreement_min`` (worst class),
    ``inception_score`` (with this classifier, 1..num_classes). Details hold the per-class
    agreement and the confusion matrix (rows: conditioning label, columns: predicted).

    Args:
        classifier: maps ``[B, C, H, W]`` float images in [0, 1] to ``[B, K]`` logits.
        num_classes: K.
        class_names: for the report.
        splits: Inception Score splits.
        space: classifier name used in metric names.

    Example:
        >>> c = LabelCheck(lambda x: torch.eye(2)[x.flatten(1)[:, 0].long()] * 9, 2, space="toy")
        >>> c.update(Batch(torch.tensor([0.0, 1.0]).view(2, 1, 1, 1), label=torch.tensor([0, 1])))
        >>> c.compute().value
        1.0
    """

    name = "labels"

    def __init__(
        self,
        classifier: Callable[[Tensor], Tensor] | None,
        num_classes: int,
        *,
        class_names: Sequence[str] | None = None,
        splits: int = 10,
        gates: Sequence[str] | Mapping[str, str | float] | None = None,
        space: str = "reference classifier",
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"LabelCheck needs num_classes >= 2, got {num_classes}")
        self.classifier = classifier
        self.num_classes = num_classes
        self.class_names = (
            list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        )
        self.splits = splits
        self.gates: list[Gate] = parse_gates(gates)
        self.space = space
        self._logits: list[Tensor] = []
        self._labels: list[Tensor] = []

    def reset(self) -> None:
        self._logits, self._labels = [], []

    def update(self, batch: Batch) -> None:
        if self.classifier is None:
            raise ValueError("LabelCheck has no classifier; call update_logits instead")
        if batch.label is None:
            raise ValueError("LabelCheck needs the conditioning labels (batch.label is None)")
        img = batch.image.float() / 255.0 if not batch.image.is_floating_point() else batch.image
        with torch.inference_mode():
            logits = self.classifier(img)
        self.update_logits(logits, batch.label)

    def update_logits(self, logits: Tensor, labels: Tensor) -> None:
        """Accumulate ``[B, K]`` classifier logits and ``[B]`` conditioning labels."""
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits must be [B, {self.num_classes}], got {tuple(logits.shape)}")
        if labels.shape != (logits.shape[0],):
            raise ValueError(f"labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)}")
        self._logits.append(logits.detach().float().cpu())
        self._labels.append(labels.detach().cpu().to(torch.int64))

    def measure(self) -> list[CheckResult]:
        if not self._logits:
            raise ValueError("LabelCheck.compute called before any update")
        logits, target = torch.cat(self._logits), torch.cat(self._labels)
        pred = logits.argmax(1)
        overall, per_class = label_agreement(pred, target, self.num_classes)
        cm = confusion_matrix(pred, target, self.num_classes)
        splits = max(1, min(self.splits, logits.shape[0] // 2))
        is_mean, is_std = inception_score(logits, splits=splits)
        named = {self.class_names[c]: v for c, v in per_class.items()}
        worst = min(per_class, key=lambda c: per_class[c])
        return [
            make_result(
                "label_agreement",
                overall,
                self.space,
                per_class=named,
                confusion=cm.tolist(),
                class_names=self.class_names,
                n=int(target.shape[0]),
            ),
            make_result(
                "label_agreement_min", per_class[worst], self.space, worst_class=self.class_names[worst]
            ),
            make_result("inception_score", is_mean, self.space, std=is_std, splits=splits),
        ]

    def compute_all(self) -> list[CheckResult]:
        return apply_gates(self.measure(), self.gates)

    def compute(self) -> CheckResult:
        return self.compute_all()[0]
