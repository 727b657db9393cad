"""Checks of generated data: fidelity, diversity, labels, memorization, stability; gates, filters, reports.

Importing this package fills ``core.registry.FEATURES`` (feature extractors) and
``core.registry.CHECKS`` (stateful checks). The math lives in ``checks.functional``.
"""

from augmentgen.checks.base import METRICS, FeatureCheck, MetricInfo, make_result
from augmentgen.checks.diversity import ClassSpreadCheck, DuplicateCheck, ModeCoverageCheck, VendiCheck
from augmentgen.checks.features import (
    ClassifierFeatures,
    EffNetLite0Features,
    FeatureExtractor,
    PixelFeatures,
    create_extractor,
    extract_features,
)
from augmentgen.checks.features_hub import TimmFeatures, TorchvisionFeatures
from augmentgen.checks.fidelity import FIDCheck, KIDCheck, PRDCCheck
from augmentgen.checks.filters import (
    BlankFilter,
    ConfidenceFilter,
    DuplicateFilter,
    FilterChain,
    FiniteFilter,
    NearCopyFilter,
    SampleFilter,
)
from augmentgen.checks.gates import Gate, apply_gates, parse_gates
from augmentgen.checks.labels import LabelCheck
from augmentgen.checks.memorization import MemorizationCheck
from augmentgen.checks.reconstruction import ReconstructionCheck
from augmentgen.checks.suite import CheckConfig, CheckRun, run_checks

__all__ = [
    "METRICS",
    "BlankFilter",
    "CheckConfig",
    "CheckRun",
    "ClassSpreadCheck",
    "ClassifierFeatures",
    "ConfidenceFilter",
    "DuplicateCheck",
    "DuplicateFilter",
    "EffNetLite0Features",
    "FIDCheck",
    "FeatureCheck",
    "FeatureExtractor",
    "FilterChain",
    "FiniteFilter",
    "Gate",
    "KIDCheck",
    "LabelCheck",
    "MemorizationCheck",
    "MetricInfo",
    "ModeCoverageCheck",
    "NearCopyFilter",
    "PRDCCheck",
    "PixelFeatures",
    "ReconstructionCheck",
    "SampleFilter",
    "TimmFeatures",
    "TorchvisionFeatures",
    "VendiCheck",
    "apply_gates",
    "create_extractor",
    "extract_features",
    "make_result",
    "parse_gates",
    "run_checks",
]
