"""Pipelines of ops, composites, adapters and generators; DataLoader helpers."""

from augmentgen.pipeline.adapters import AlbumentationsStage, TorchvisionStage
from augmentgen.pipeline.compose import OneOf, Pipeline, RandomApply, SomeOf, stage_from_dict
from augmentgen.pipeline.dataloader import (
    AugmentedDataset,
    BatchAugment,
    EpochSampler,
    collate_batch,
    collate_detection,
    make_loader,
)
from augmentgen.pipeline.label_mix import CutMix, LabelMix, LabelMixParams, MixUp
from augmentgen.pipeline.plan import Step, Trace
from augmentgen.pipeline.policies import AutoAugment, RandAugment, TrivialAugment
from augmentgen.pipeline.synthesize import Synthesize, SyntheticDataset

__all__ = [
    "AlbumentationsStage", "AugmentedDataset", "AutoAugment", "BatchAugment", "CutMix", "EpochSampler", "LabelMix",
    "LabelMixParams", "MixUp", "OneOf", "Pipeline", "RandAugment",
    "RandomApply", "SomeOf", "Step", "Synthesize", "SyntheticDataset", "Trace", "TorchvisionStage", "TrivialAugment",
    "collate_batch", "collate_detection", "make_loader", "stage_from_dict",
]
