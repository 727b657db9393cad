"""``python -m augmentgen.cli``: the same command as ``augmentgen``."""

from augmentgen.cli import main

main()
