"""Label math: agreement of a reference classifier with the conditioning labels, confusion, Inception Score.

Inception Score: Salimans et al. 2016 (https://arxiv.org/abs/1606.03498),
``exp(E_x KL(p(y|x) || p(y)))``, here with the reference classifier's softmax instead of
Inception-v3's, so it is on a 1..num_classes scale.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Counts of (target row, predicted column) pairs.

    Shape:
        pred, target ``[N]`` int -> ``[num_classes, num_classes]`` int64.

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2).tolist()
        [[1, 1], [0, 1]]
    """
    if pred.shape != target.shape or pred.ndim != 1:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be [N]")
    for name, t in (("pred", pred), ("target", target)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise ValueError(f"{name} holds class ids outside [0, {num_classes}): {t.min()}..{t.max()}")
    idx = target.to(torch.int64) * num_classes + pred.to(torch.int64)
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def label_agreement(pred: Tensor, target: Tensor, num_classes: int) -> tuple[float, dict[int, float]]:
    """Share of samples whose predicted class equals the conditioning label, overall and per class.

    Classes without samples are left out of the per-class dict.

    Example:
        >>> label_agreement(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2)
        (0.6666666666666666, {0: 0.5, 1: 1.0})
    """
    cm = confusion_matrix(pred, target, num_classes)
    total = int(cm.sum())
    if total == 0:
        raise ValueError("label_agreement got no samples")
    per = {c: float(cm[c, c] / cm[c].sum()) for c in range(num_classes) if int(cm[c].sum()) > 0}
    return float(cm.diagonal().sum()) / total, per


def inception_score(logits: Tensor, *, splits: int = 10) -> tuple[float, float]:
    """Inception Score from class logits: mean and sample std over ``splits`` consecutive splits (as torchmetrics).

    Shape:
        logits ``[N, K]``.

    Example:
        >>> round(inception_score(torch.eye(4) * 100, splits=1)[0], 4)
        4.0
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, K], got shape {tuple(logits.shape)}")
    if not 1 <= splits <= logits.shape[0]:
        raise ValueError(f"splits must be in [1, N={logits.shape[0]}], got {splits}")
    logp = logits.to(torch.float64).log_softmax(1)
    p = logp.exp()
    scores = []
    for part_p, part_logp in zip(p.chunk(splits), logp.chunk(splits), strict=True):
        marginal = part_p.mean(0, keepdim=True)
        kl = (part_p * (part_logp - marginal.log())).sum(1).mean()
        scores.append(float(kl.exp()))
    arr = np.asarray(scores)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
