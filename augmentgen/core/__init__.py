"""Central types, protocols, registries and rng helpers. Imports nothing of the project."""

from augmentgen.core.batch import Batch, Boxes, Sample, pad_boxes
from augmentgen.core.check import Check, CheckResult
from augmentgen.core.generator import SampleGenerator
from augmentgen.core.params import Params, params_from_dict
from augmentgen.core.registry import CHECKS, FEATURES, GENERATORS, OPS, Registry, register
from augmentgen.core.rng import RNG, Array, derive_seed, sample_rng, torch_rng
from augmentgen.core.transform import Transform

__all__ = [
    "Array", "Batch", "Boxes", "CHECKS", "Check", "CheckResult", "FEATURES", "GENERATORS", "OPS",
    "Params", "RNG", "Registry", "Sample", "SampleGenerator", "Transform", "derive_seed", "pad_boxes",
    "params_from_dict", "register", "sample_rng", "torch_rng",
]
