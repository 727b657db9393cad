"""Reconstruction check for autoencoding generators (the CVAE): PSNR and SSIM of reconstructions against their inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from augmentgen.checks.base import make_result
from augmentgen.checks.functional.reconstruction import psnr, ssim
from augmentgen.checks.gates import apply_gates, parse_gates
from augmentgen.core.batch import Batch
from augmentgen.core.check import CheckResult
from augmentgen.core.registry import CHECKS


@CHECKS.register("reconstruction")
class ReconstructionCheck:
    """Mean PSNR (main figure, identical pairs are capped at ``max_psnr``) and mean SSIM.

    ``update(batch)`` takes reconstructions in ``batch.image`` and the inputs in
    ``batch.meta["original"]`` (a tensor of the same shape); ``update_pair`` takes both.

    Example:
        >>> c = ReconstructionCheck()
        >>> x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> c.update_pair(x, (x + 0.1).clamp(0, 1)); c.compute().value > 15
        True
    """

    name = "reconstruction"

    def __init__(
        self, *, max_psnr: float = 100.0, gates: Sequence[str] | Mapping[str, str | float] | None = None
    ) -> None:
        self.max_psnr = max_psnr
        self.gates = parse_gates(gates)
        self._psnr: list[Tensor] = []
        self._ssim: list[Tensor] = []

    def update(self, batch: Batch) -> None:
        orig = batch.meta.get("original")
        if not isinstance(orig, Tensor):
            raise ValueError("ReconstructionCheck.update needs batch.meta['original'] (the input images)")
        self.update_pair(orig, batch.image)

    def update_pair(self, original: Tensor, reconstruction: Tensor) -> None:
        a = original.float() / 255.0 if not original.is_floating_point() else original
        b = reconstruction.float() / 255.0 if not reconstruction.is_floating_point() else reconstruction
        self._psnr.append(psnr(a, b).clamp_max(self.max_psnr).cpu())
        if min(a.shape[-2:]) >= 11:
            self._ssim.append(ssim(a, b).cpu())

    def measure(self) -> list[CheckResult]:
        if not self._psnr:
            raise ValueError("ReconstructionCheck.compute called before any update")
        p = torch.cat(self._psnr)
        out = [make_result("psnr", float(p.mean()), n=int(p.shape[0]))]
        if self._ssim:
            out.append(make_result("ssim", float(torch.cat(self._ssim).mean())))
        return out

    def compute_all(self) -> list[CheckResult]:
        return apply_gates(self.measure(), self.gates)

    def compute(self) -> CheckResult:
        return self.compute_all()[0]
