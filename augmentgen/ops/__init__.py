"""Classical ops; importing this package fills the op registry."""

from augmentgen.ops import blur, color, erasing, noise  # noqa: F401  (photometric ops register on import)
