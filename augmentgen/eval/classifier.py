"""The reference classifier: a small VGG-style CNN, trained on real data (or on generated data for CAS).

It judges generators (label agreement, the collapse alarm) and is the fixed recipe behind
the Classification Accuracy Score. Saved and loaded like the generators
(``config.json`` + ``model.safetensors``, kind ``reference_classifier``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augmentgen.core.batch import Batch
from augmentgen.core.rng import torch_rng
from augmentgen.core.system import native_bf16
from augmentgen.generators import checkpoint as ckpt
from augmentgen.generators.layers import build, channels_last, count_parameters

if TYPE_CHECKING:
    from augmentgen.pipeline.label_mix import LabelMix

logger = logging.getLogger(__name__)

KIND = "reference_classifier"


@dataclass
class ClassifierConfig:
    """Architecture of the reference classifier.

    Args:
        num_classes: output classes.
        channels: image channels.
        image_size: square side, a multiple of 4.
        width: channels of the first block (second block: 2x).
        hidden: width of the fully connected layer.
        dropout: dropout before each linear layer (drawn from an explicit generator while training).
    """

    num_classes: int = 10
    channels: int = 1
    image_size: int = 28
    width: int = 32
    hidden: int = 128
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.image_size % 4 or self.image_size < 4:
            raise ValueError(f"ClassifierConfig.image_size must be a multiple of 4, got {self.image_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ClassifierConfig.dropout must be in [0, 1), got {self.dropout}")


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class ReferenceClassifier(nn.Module):
    """``[B, C, S, S]`` images in [0, 1] -> ``[B, num_classes]`` logits.

    Example:
        >>> clf = ReferenceClassifier(ClassifierConfig(image_size=8, width=4))
        >>> clf(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    kind = KIND

    def __init__(self, config: ClassifierConfig | None = None, *, rng: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ClassifierConfig()
        w, s = cfg.width, cfg.image_size // 4

        def make() -> nn.ModuleDict:
            return nn.ModuleDict(
                {
                    "features": nn.Sequential(
                        *_block(cfg.channels, w), *_block(w, w), nn.MaxPool2d(2),  # S/2
                        *_block(w, 2 * w), *_block(2 * w, 2 * w), nn.MaxPool2d(2),  # S/4
                        nn.Flatten(),
                    ),
                    "fc": nn.Linear(2 * w * s * s, cfg.hidden),
                    "out": nn.Linear(cfg.hidden, cfg.num_classes),
                }
            )  # fmt: skip

        # channels-last weights: oneDNN runs these small convolutions faster in that order (a
        # training step of width 16, batch 64, one thread: 22 against 30 ms of CPU). The same
        # weights; results agree to float rounding, not bit for bit, with the NCHW order.
        self.net = channels_last(build(make, rng if rng is not None else torch_rng(0, KIND, "init")))

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _dropout(self, h: Tensor, rng: torch.Generator | None) -> Tensor:
        # dropout from an explicit generator: nn.Dropout would draw from the global RNG
        if not self.training or rng is None or self.config.dropout == 0.0:
            return h
        keep = 1.0 - self.config.dropout
        mask = torch.rand(h.shape, generator=rng, device=rng.device).to(h.device) < keep
        return h * mask / keep

    def forward(self, x: Tensor, rng: torch.Generator | None = None) -> Tensor:
        """Logits of ``x`` in [0, 1]; dropout is active only in training mode with an ``rng``."""
        h = self.net["features"](x * 2.0 - 1.0)  # [B, 2w * S/4 * S/4]
        h = F.relu(self.net["fc"](self._dropout(h, rng)))
        logits: Tensor = self.net["out"](self._dropout(h, rng))
        return logits

    @torch.no_grad()
    def predict_logits(self, images: Tensor, chunk: int = 1000) -> Tensor:
        """Logits of ``images`` (uint8 or float in [0, 1]) in eval mode, in chunks; on the images' device."""
        was = self.training
        self.eval()
        out = []
        for i in range(0, images.shape[0], chunk):
            x = images[i : i + chunk].to(self.device)
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
            out.append(self(x))
        self.train(was)
        if not out:
            return torch.zeros(0, self.num_classes)
        return torch.cat(out).to(images.device)

    def accuracy(self, data: Batch) -> float:
        """Share of ``data`` rows whose argmax prediction equals the label."""
        if data.label is None:
            raise ValueError("ReferenceClassifier.accuracy: the batch needs labels")
        pred = self.predict_logits(data.image).argmax(1).cpu()
        return float((pred == data.label.cpu()).float().mean())

    def save_pretrained(self, directory: str | Path, meta: dict[str, Any] | None = None) -> None:
        """Write ``config.json`` + ``model.safetensors``."""
        ckpt.save_model(directory, KIND, dataclasses.asdict(self.config), self, meta)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: torch.device | str = "cpu"
    ) -> ReferenceClassifier:
        """Rebuild from ``save_pretrained`` output; another kind or shape is a ValueError."""

        def make(cfg: dict[str, Any]) -> nn.Module:
            return cls(ckpt.config_from_dict(ClassifierConfig, cfg, f"{Path(directory) / ckpt.CONFIG_NAME}"))

        model, _ = ckpt.load_model(directory, KIND, make, device)
        return model.eval()  # type: ignore[return-value]

    def summary(self) -> dict[str, int]:
        return {"classifier": count_parameters(self)}


def random_shift(x: Tensor, max_shift: int, rng: torch.Generator) -> Tensor:
    """Shift each image by its own integer ``(dy, dx)`` in ``[-max_shift, max_shift]``, zero fill.

    Shape:
        ``[B, C, H, W]`` -> same.
    """
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p))
    off = torch.randint(0, 2 * p + 1, (2, b), generator=rng, device=rng.device).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + off[0][:, None])[:, None, :, None]  # [B, 1, H, 1]
    cols = (torch.arange(w, device=x.device)[None, :] + off[1][:, None])[:, None, None, :]  # [B, 1, 1, W]
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[bi, ci, rows, cols]


@dataclass(frozen=True)
class ClassifierRun:
    """A trained classifier and what its training measured."""

    model: ReferenceClassifier
    seconds: float
    cpu_seconds: float
    history: list[dict[str, float]]
    test_accuracy: float | None


DEFAULT_STEPS = 3000


def smoothed_cross_entropy(logits: Tensor, target: Tensor, smoothing: Tensor) -> Tensor:
    """Mean cross-entropy with a label smoothing of its own per row.

    Row ``i`` is scored against ``(1 - smoothing[i])`` on its label plus ``smoothing[i] / K``
    on every class, as ``F.cross_entropy(..., label_smoothing=e)`` does for one ``e``.

    Shape:
        logits ``[B, K]``, target ``[B]`` int64, smoothing ``[B]`` in [0, 1) -> scalar.

    Example:
        >>> x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
        >>> a = smoothed_cross_entropy(x, y, torch.full((4,), 0.2))
        >>> bool(torch.isclose(a, F.cross_entropy(x, y, label_smoothing=0.2)))
        True
    """
    logp = logits.float().log_softmax(1)
    nll = -logp.gather(1, target[:, None])[:, 0]
    e = smoothing.to(logp)
    return ((1.0 - e) * nll - e * logp.mean(1)).mean()


PRECISIONS = ("float32", "bfloat16", "auto")


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``float32`` or ``bfloat16``: ``auto`` picks bfloat16 where ``native_bf16(device)``.

    Example:
        >>> resolve_precision("float32")
        'float32'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"classifier precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    return precision


def train_classifier(
    data: Batch,
    *,
    config: ClassifierConfig | None = None,
    steps: int = DEFAULT_STEPS,
    batch_size: int = 128,
    lr: float = 2e-3,
    augment: bool = True,
    seed: int = 0,
    test: Batch | None = None,
    device: torch.device | str = "cpu",
    log_every: int = 500,
    init: ReferenceClassifier | None = None,
    label_smoothing: Tensor | None = None,
    soft_targets: Tensor | None = None,
    mix: LabelMix | None = None,
    precision: str = "float32",
) -> ClassifierRun:
    """Train a reference classifier on ``data`` with Adam and a cosine schedule; deterministic under ``seed``.

    Args:
        data: images ``[N, C, S, S]`` (uint8 or float in [0, 1]) with labels, on the CPU.
        config: architecture; by default sized from ``data`` (classes from the labels).
        steps: optimizer steps.
        batch_size: rows per step.
        lr: peak learning rate (5% linear warm-up, then cosine to 0).
        augment: random shifts of up to ``side // 14`` pixels (2 at 28x28, none below 14x14).
        seed: seeds the init, the data order and the shifts.
        test: labeled real test set, evaluated at the end.
        init: start from these weights (fine-tuning; its config is used), not from ``seed``'s init.
        label_smoothing: ``[N]`` per-row label smoothing in [0, 1) (``smoothed_cross_entropy``),
            e.g. non-zero on generated rows only; ``None``: plain cross-entropy on every row.
        soft_targets: ``[N, K]`` a target distribution per row (each row sums to 1), e.g. a teacher's
            probabilities blended into the generated rows' labels; excludes ``label_smoothing``.
        precision: ``float32``, ``bfloat16`` (the forward pass under ``torch.autocast``: convolutions
            and linear layers in bfloat16, the loss, weights and optimizer in float32) or ``auto``
            (bfloat16 where the device computes it natively, see ``native_bf16``). Test passes stay float32.
        mix: MixUp / CutMix each batch after the shifts (``pipeline.LabelMix``, its draws seeded by
            the mix's seed and the step) and learn the mixed targets; excludes ``label_smoothing``
            and ``soft_targets`` (the mix has a ``label_smoothing`` of its own).

    Example:
        >>> run = train_classifier(load_digits("train").to_batch(), steps=200)  # doctest: +SKIP
    """
    if data.label is None:
        raise ValueError("train_classifier: data needs labels")
    if label_smoothing is not None:
        if label_smoothing.shape != (data.batch_size,):
            raise ValueError(
                f"train_classifier: label_smoothing must be one value per row [{data.batch_size}], "
                f"got shape {tuple(label_smoothing.shape)}"
            )
        if not bool(((label_smoothing >= 0) & (label_smoothing < 1)).all()):
            raise ValueError("train_classifier: label_smoothing values must be in [0, 1)")
    if soft_targets is not None:
        if label_smoothing is not None:
            raise ValueError("train_classifier: give label_smoothing or soft_targets, not both")
        if soft_targets.ndim != 2 or soft_targets.shape[0] != data.batch_size:
            raise ValueError(
                f"train_classifier: soft_targets must be [N={data.batch_size}, K], got {tuple(soft_targets.shape)}"
            )
        sums = soft_targets.float().sum(1)
        if not (bool((soft_targets >= 0).all()) and torch.allclose(sums, torch.ones_like(sums), atol=1e-4)):
            raise ValueError("train_classifier: every row of soft_targets must be a distribution (>= 0, sums to 1)")
    precision = resolve_precision(precision, device)
    if mix is not None and (label_smoothing is not None or soft_targets is not None):
        raise ValueError("train_classifier: mix excludes label_smoothing and soft_targets (LabelMix smooths itself)")
    if init is not None:
        config = init.config
    if config is None:
        config = ClassifierConfig(
            num_classes=int(data.label.max()) + 1,
            channels=int(data.image.shape[1]),
            image_size=int(data.image.shape[-1]),
        )
    model = ReferenceClassifier(config, rng=torch_rng(seed, KIND, "init")).to(device)
    if init is not None:
        model.load_state_dict(init.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    warm = max(1, steps // 20)
    n = data.batch_size
    history: list[dict[str, float]] = []
    t0, c0 = time.perf_counter(), time.process_time()
    model.train()
    perm, perm_epoch = torch.empty(0, dtype=torch.int64), -1
    run_loss, run_acc, k = 0.0, 0.0, 0
    for step in range(1, steps + 1):
        pos = (step - 1) * batch_size
        idx_parts: list[Tensor] = []
        while sum(p.numel() for p in idx_parts) < batch_size:
            epoch, off = divmod(pos, n)
            if epoch != perm_epoch:
                perm, perm_epoch = (
                    torch.randperm(n, generator=torch_rng(seed, "classifier-epoch", epoch)),
                    epoch,
                )
            take = min(batch_size - sum(p.numel() for p in idx_parts), n - off)
            idx_parts.append(perm[off : off + take])
            pos += take
        idx = torch.cat(idx_parts)
        b = data.index(idx).as_float().to(device)
        x, y = b.image, data.label.new_empty(0) if b.label is None else b.label
        if augment:
            x = random_shift(x, x.shape[-1] // 14, torch_rng(seed, "classifier-shift", step))
        f = (
            step / warm
            if step <= warm
            else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))
        )
        for g in opt.param_groups:
            g["lr"] = lr * f
        mixed: Tensor | None = None
        if mix is not None:
            x, mixed = mix(x, y, epoch=0, step=step)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            logits = model(x, torch_rng(seed, "classifier-dropout", step, device=device))
        logits = logits.float()
        loss: Tensor
        soft = mixed if mixed is not None else None if soft_targets is None else soft_targets[idx]
        if soft is not None:  # a distribution per row: the mix's targets, or the given ones
            loss = -(soft.to(logits) * logits.log_softmax(1)).sum(1).mean()
        elif label_smoothing is None:
            loss = F.cross_entropy(logits, y)
        else:
            loss = smoothed_cross_entropy(logits, y, label_smoothing[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        run_loss += float(loss.detach())
        run_acc += float((logits.detach().argmax(1) == y).float().mean())
        k += 1
        if step % log_every == 0 or step == steps:
            rec = {
                "step": float(step),
                "loss": run_loss / k,
                "train_acc": run_acc / k,
                "time_s": time.perf_counter() - t0,
            }
            history.append(rec)
            logger.info("classifier step %d loss %.4f train_acc %.4f", step, rec["loss"], rec["train_acc"])
            run_loss, run_acc, k = 0.0, 0.0, 0
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    model.eval()
    acc = model.accuracy(test) if test is not None else None
    return ClassifierRun(model, seconds, cpu_seconds, history, acc)
