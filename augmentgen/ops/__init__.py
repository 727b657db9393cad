"""Classical ops; importing this package fills the op registry."""

from augmentgen.ops import blur, color, crop, erasing, geometric, levels, lighting, mix, noise, weather  # noqa: F401  (ops register on import)
