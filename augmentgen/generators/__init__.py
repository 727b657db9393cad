"""Learned generators (cGAN, CVAE, text-to-image GAN), their trainer, health monitors and checkpoints.

Importing this package registers the generators in ``core.registry.GENERATORS``.
"""

from augmentgen.generators.cgan import CGANConfig, ConditionalGAN
from augmentgen.generators.checkpoint import load_generator
from augmentgen.generators.cvae import ConditionalVAE, CVAEConfig
from augmentgen.generators.diffaugment import DiffAugment
from augmentgen.generators.diffusers_backend import DiffusersConfig, DiffusersGenerator
from augmentgen.generators.ensemble import GeneratorEnsemble
from augmentgen.generators.monitors import CollapseMonitor, TrainingDiverged, TrainingStopped
from augmentgen.generators.t2i import T2IConfig, TextToImageGAN
from augmentgen.generators.trainer import Trainer, TrainResult

__all__ = [
    "CGANConfig",
    "CVAEConfig",
    "CollapseMonitor",
    "ConditionalGAN",
    "ConditionalVAE",
    "DiffAugment",
    "DiffusersConfig",
    "DiffusersGenerator",
    "GeneratorEnsemble",
    "T2IConfig",
    "TextToImageGAN",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "TrainingStopped",
    "load_generator",
]
