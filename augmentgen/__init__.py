"""augmentgen: classical augmentations and learned generators in one seeded pipeline."""

from augmentgen.core import Batch, Boxes, Sample

__version__ = "0.1.0"

__all__ = ["Batch", "Boxes", "Sample", "__version__"]
