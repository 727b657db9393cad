"""One trainer for every learned generator: the model supplies ``training_step``, the trainer the rest.

The trainer owns the loop, data order, learning-rate schedule, gradient clipping, mixed
precision (float16 on CUDA, bfloat16 on CUDA or CPU), health monitors, sample grids, metrics (JSONL + PNG curves) and resumable
checkpoints. Every random draw of step ``s`` comes from ``(seed, s)``: the batch order from
``(seed, "epoch", e)``, the model's noise from ``(seed, "step", s)``, the classical ops of
``spec.augment`` (when given) from ``(seed, "augment", s)``. A resumed run therefore
equals an uninterrupted one, given the weights and optimizer state in the checkpoint.

Output folder::

    checkpoint/   last good model (config.json + model.safetensors) + trainer state
    model/        the final model alone (what ``from_pretrained`` reads)
    samples/      step_000500.png ... 10x10 grids (row = class)
    metrics.jsonl one record per log interval; loss_curves.png
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from augmentgen.core.batch import Batch
from augmentgen.core.rng import torch_rng
from augmentgen.core.system import native_bf16
from augmentgen.generators import checkpoint as ckpt
from augmentgen.generators.config import TrainSpec
from augmentgen.generators.images import save_curves, save_grid
from augmentgen.generators.monitors import DivergenceMonitor, Monitor, OverfitMonitor, TrainingStopped

logger = logging.getLogger(__name__)


class Trainable(Protocol):
    """What a generator offers the trainer (ConditionalGAN and ConditionalVAE are both nn.Modules)."""

    num_classes: int

    def param_groups(self) -> dict[str, list[nn.Parameter]]: ...

    def default_optim(self) -> dict[str, dict[str, Any]]: ...

    def training_step(self, real: Batch, rng: torch.Generator, ctx: StepContext) -> dict[str, float]: ...

    def generate(self, condition: Tensor | list[Any], n: int, rng: Any) -> Batch: ...

    def save_pretrained(self, directory: str | Path, meta: dict[str, Any] | None = None) -> None: ...


@dataclass
class StepContext:
    """Handed to ``training_step``: the step number and ``optimize(group, loss)``."""

    step: int
    optimizers: dict[str, torch.optim.Optimizer]
    scalers: dict[str, torch.amp.GradScaler]
    grad_clip: float | None
    grad_norms: dict[str, float] = field(default_factory=dict)

    def optimize(self, group: str, loss: Tensor) -> None:
        """Zero, backward, (unscale), clip, step the optimizer of ``group``; records its gradient norm."""
        opt = self.optimizers[group]
        scaler = self.scalers[group]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        scaler.unscale_(opt)
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        clip = self.grad_clip if self.grad_clip is not None else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, clip) if params else torch.zeros(())
        self.grad_norms[f"grad_norm/{group}"] = float(norm)
        scaler.step(opt)
        scaler.update()


@dataclass(frozen=True)
class TrainResult:
    """How a run ended."""

    status: str  # "completed"
    step: int
    seconds: float  # wall clock of the loop
    cpu_seconds: float  # process CPU time of the loop (close to wall on an idle machine)
    out_dir: Path
    metrics: dict[str, float]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def lr_factor(step: int, spec: TrainSpec) -> float:
    """Multiplier of the base learning rate at ``step`` (1-based): linear warm-up, then constant or cosine."""
    if spec.warmup_steps and step <= spec.warmup_steps:
        return step / spec.warmup_steps
    if spec.schedule == "constant":
        return 1.0
    span = max(1, spec.steps - spec.warmup_steps)
    t = min(1.0, (step - spec.warmup_steps) / span)
    return spec.min_lr_ratio + (1.0 - spec.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


class Trainer:
    """Train ``model`` on labeled images ``data`` as ``spec`` says, writing into ``out_dir``.

    Args:
        model: a generator (nn.Module with ``training_step`` and friends).
        data: all training images ``[N, C, H, W]`` (uint8 or float in [0, 1]) with labels, on the CPU.
        spec: steps, batch size, optimizer, schedule, monitors.
        out_dir: output folder (see the module docstring).
        monitors: extra monitors (e.g. a ``CollapseMonitor``); divergence and r_t are always on.
        callbacks: ``f(trainer, step, metrics)`` after each step.
        progress: show a rich progress bar with steps/s and ETA.
        augment: ``f(batch, rng=generator) -> batch`` applied to every real batch (default: a
            pipeline of ``spec.augment``, or none when that is empty).

    Example:
        >>> Trainer(ConditionalVAE(CVAEConfig()), ds.to_batch(), TrainSpec(steps=100), "runs/x").fit()  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        data: Batch,
        spec: TrainSpec,
        out_dir: str | Path,
        *,
        monitors: Sequence[Monitor] = (),
        callbacks: Sequence[Callable[[Trainer, int, dict[str, float]], None]] = (),
        progress: bool = False,
        augment: Callable[..., Batch] | None = None,
    ) -> None:
        if data.label is None:
            raise ValueError("Trainer: data must carry labels")
        if data.batch_size == 0:
            raise ValueError("Trainer: data is empty")
        self.spec = spec
        self.device = resolve_device(spec.device)
        self.model = model.to(self.device)
        self.data = data
        self.out_dir = Path(out_dir)
        self.monitors: list[Monitor] = [
            DivergenceMonitor(spec.monitor.max_abs_loss),
            OverfitMonitor(spec.monitor.rt_window, spec.monitor.rt_target, start=spec.monitor.judge_from(spec.steps)),
            *monitors,
        ]
        self.callbacks = list(callbacks)
        self.progress = progress
        if augment is None and spec.augment:
            from augmentgen.pipeline import Pipeline

            augment = Pipeline.from_dict(spec.augment, where="train.augment")
        self.augment = augment
        # float16 needs CUDA (and loss scaling); bfloat16 has float32's range, so no scaling, and
        # runs on CUDA or on a CPU with bf16 units (AVX512-BF16, AMX): elsewhere oneDNN emulates
        # it, slower than float32, so the recipe stays portable and trains in float32 there
        bf16 = spec.amp_dtype == "bfloat16"
        amp = spec.amp and (self.device.type == "cuda" or (bf16 and native_bf16(self.device)))
        if spec.amp and not amp:
            need = "a device that computes bfloat16 natively" if bf16 else "CUDA"
            logger.warning("amp=True needs %s for %s; training in float32 on %s", need, spec.amp_dtype, self.device)
        self.amp = amp
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        scale = amp and not bf16
        defaults = model.default_optim()
        groups = model.param_groups()
        self.base_lr: dict[str, float] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        for name, params in groups.items():
            lr = spec.lr.get(name, defaults[name]["lr"]) if isinstance(spec.lr, dict) else spec.lr
            lr = float(defaults[name]["lr"] if lr is None else lr)
            betas = spec.betas or defaults[name].get("betas", (0.9, 0.999))
            self.base_lr[name] = lr
            self.optimizers[name] = torch.optim.Adam(
                params, lr=lr, betas=tuple(betas), weight_decay=spec.weight_decay, foreach=True
            )
            self.scalers[name] = torch.amp.GradScaler("cuda", enabled=scale)
        if isinstance(spec.lr, dict):
            unknown = sorted(set(spec.lr) - set(groups))
            if unknown:
                raise ValueError(
                    f"train.lr names unknown param groups {unknown}; this model has {sorted(groups)}"
                )
        self.step = 0
        self._perm_epoch = -1
        self._perm = torch.empty(0, dtype=torch.int64)
        self.last_good: int | None = None

    # ---- data and randomness ----------------------------------------------------------------
    def _epoch_perm(self, epoch: int) -> Tensor:
        if epoch != self._perm_epoch:
            n = self.data.batch_size
            self._perm = torch.randperm(n, generator=torch_rng(self.spec.seed, "epoch", epoch))
            self._perm_epoch = epoch
        return self._perm

    def batch_indices(self, step: int) -> Tensor:
        """Rows of ``data`` used at ``step`` (1-based): consecutive slices of per-epoch permutations."""
        n, bs = self.data.batch_size, self.spec.batch_size
        pos = (step - 1) * bs
        parts = []
        need = bs
        while need > 0:
            epoch, off = divmod(pos, n)
            take = min(need, n - off)
            parts.append(self._epoch_perm(epoch)[off : off + take])
            pos += take
            need -= take
        return torch.cat(parts)

    def real_batch(self, step: int) -> Batch:
        """The real rows of ``step``, float on the device, through ``augment`` when there is one."""
        b = self.data.index(self.batch_indices(step)).as_float().to(self.device)
        if self.augment is not None:
            b = self.augment(b, rng=torch_rng(self.spec.seed, "augment", step, device=self.device))
            if b.label is None:
                raise ValueError("train.augment: the ops dropped the labels")
        return b

    def step_rng(self, step: int) -> torch.Generator:
        return torch_rng(self.spec.seed, "step", step, device=self.device)

    # ---- checkpoints ------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoint"

    def _finite(self) -> bool:
        return all(torch.isfinite(v).all() for v in self.model.state_dict().values() if v.is_floating_point())

    def save_checkpoint(self) -> bool:
        """Write the model and trainer state of the current step, unless the weights hold NaN/inf."""
        if not self._finite():
            logger.error("step %d: weights are not finite; checkpoint not written", self.step)
            return False
        tmp = self.out_dir / "checkpoint.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        self.model.save_pretrained(tmp, meta={"step": self.step, "seed": self.spec.seed})
        ckpt.save_trainer_state(
            tmp,
            self.optimizers,
            {k: s for k, s in self.scalers.items() if s.is_enabled()},
            {"step": self.step, "seed": self.spec.seed, "spec": self.spec.model_dump(mode="json")},
        )
        old = self.out_dir / "checkpoint.old"
        if self.checkpoint_dir.exists():
            if old.exists():
                shutil.rmtree(old)
            self.checkpoint_dir.rename(old)
        tmp.rename(self.checkpoint_dir)
        if old.exists():
            shutil.rmtree(old)
        self.last_good = self.step
        return True

    def load_checkpoint(self, directory: str | Path | None = None) -> int:
        """Restore weights, optimizer and scaler state; returns the step the checkpoint was taken at."""
        d = Path(directory) if directory is not None else self.checkpoint_dir
        body = ckpt.read_config(d)
        ckpt.load_state_strict(self.model, ckpt.read_weights(d, self.device), str(d / ckpt.WEIGHTS_NAME))
        info = ckpt.load_trainer_state(d, self.optimizers, self.scalers, self.device)
        if int(info.get("seed", self.spec.seed)) != self.spec.seed:
            logger.warning(
                "resuming %s with seed %d, checkpoint used seed %s", d, self.spec.seed, info.get("seed")
            )
        self.step = int(info.get("step", body.get("meta", {}).get("step", 0)))
        self.last_good = self.step
        return self.step

    # ---- logging ----------------------------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def _write_record(self, record: dict[str, Any]) -> None:
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def _truncate_metrics(self, step: int) -> None:
        keep = [r for r in self.read_metrics() if int(r.get("step", 0)) <= step]
        self.metrics_path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))

    def save_samples(self, name: str) -> Path:
        """A 10-per-class grid (row = class) from a fixed latent batch."""
        c = self.model.num_classes
        labels = torch.arange(c).repeat_interleave(10)
        batch = self.model.generate(labels, len(labels), torch_rng(self.spec.seed, "grid"))
        return save_grid(self.out_dir / "samples" / f"{name}.png", batch.image, nrow=10, scale=2)

    @contextlib.contextmanager
    def _progress(self) -> Iterator[Callable[[int], None]]:
        if not self.progress:
            yield lambda s: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        cols = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
        )
        with Progress(*cols) as bar:
            task = bar.add_task(
                type(self.model).__name__, total=self.spec.steps, completed=self.step, rate=""
            )
            t0, s0 = time.perf_counter(), self.step

            def update(step: int) -> None:
                rate = (step - s0) / max(1e-9, time.perf_counter() - t0)
                bar.update(task, completed=step, rate=f"{rate:.2f} steps/s")

            yield update

    # ---- the loop ---------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Train to ``spec.steps``; with ``resume``, continue from ``out_dir/checkpoint`` when it exists.

        Raises:
            TrainingDiverged: NaN/inf or exploding loss; ``out_dir/checkpoint`` keeps the last good step.
            TrainingStopped: a monitor asked to stop (e.g. collapse with ``stop_on_collapse``).
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume and (self.checkpoint_dir / ckpt.CONFIG_NAME).is_file():
            self.load_checkpoint()
            self._truncate_metrics(self.step)
            logger.info("resumed from %s at step %d", self.checkpoint_dir, self.step)
        elif self.metrics_path.exists():
            self.metrics_path.unlink()
        spec = self.spec
        sums: dict[str, float] = {}
        count = 0
        extra: dict[str, float] = {}
        t_start, cpu_start = time.perf_counter(), time.process_time()
        t_last, s_last = t_start, self.step
        self.model.train()
        with self._progress() as update:
            while self.step < spec.steps:
                step = self.step + 1
                for name, opt in self.optimizers.items():
                    for g in opt.param_groups:
                        g["lr"] = self.base_lr[name] * lr_factor(step, spec)
                ctx = StepContext(step, self.optimizers, self.scalers, spec.grad_clip)
                real = self.real_batch(step)
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                    metrics = self.model.training_step(real, self.step_rng(step), ctx)
                metrics = {**metrics, **ctx.grad_norms}
                self.step = step
                try:
                    for mon in self.monitors:
                        extra.update(mon(self.model, step, metrics))
                    for cb in self.callbacks:
                        cb(self, step, metrics)
                except TrainingStopped as e:
                    self._on_stop(e, metrics)
                    raise
                self.model.train()
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                if step % spec.log_every == 0 or step == spec.steps:
                    now = time.perf_counter()
                    rec: dict[str, Any] = {k: v / count for k, v in sums.items()}
                    rec.update(extra)
                    lrs = {f"lr/{k}": o.param_groups[0]["lr"] for k, o in self.optimizers.items()}
                    rec.update(step=step, steps_per_s=(step - s_last) / max(1e-9, now - t_last), **lrs)
                    rec["time_s"] = now - t_start
                    self._write_record(rec)
                    logger.info(
                        "step %d %s", step, {k: round(v, 4) for k, v in rec.items() if isinstance(v, float)}
                    )
                    sums, count, extra = {}, 0, {}
                    t_last, s_last = now, step
                if spec.sample_every and step % spec.sample_every == 0:
                    self.save_samples(f"step_{step:06d}")
                    self.model.train()
                if spec.checkpoint_every and step % spec.checkpoint_every == 0:
                    self.save_checkpoint()
                update(step)
        hook = getattr(self.model, "on_train_end", None)
        if callable(hook):  # e.g. the CVAE fits its sampling prior to the training data
            hook(self.data)
        seconds, cpu_seconds = time.perf_counter() - t_start, time.process_time() - cpu_start
        self.save_checkpoint()
        self.save_samples("final")
        self.model.save_pretrained(self.out_dir / "model", meta={"step": self.step, "seed": spec.seed})
        save_curves(self.out_dir / "loss_curves.png", self.read_metrics())
        last = self.read_metrics()[-1] if self.read_metrics() else {}
        return TrainResult(
            "completed",
            self.step,
            seconds,
            cpu_seconds,
            self.out_dir,
            {k: v for k, v in last.items() if isinstance(v, float)},
        )

    def _on_stop(self, e: TrainingStopped, metrics: dict[str, float]) -> None:
        where = (
            f"last good checkpoint: step {self.last_good} in {self.checkpoint_dir}"
            if self.last_good is not None
            else "no checkpoint was written before this"
        )
        self._write_record(
            {"step": e.step, "event": e.reason, "message": str(e), "last_good_step": self.last_good}
        )
        save_curves(self.out_dir / "loss_curves.png", self.read_metrics())
        logger.error("%s; %s", e, where)
        e.args = (f"{e}; {where}",)
