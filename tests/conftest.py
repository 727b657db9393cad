"""Suite-wide test settings."""

from __future__ import annotations

import os

from hypothesis import settings

# CI runs the same examples every time (a property failure there is a bug to fix, not a
# dice roll); locally hypothesis explores new examples on each run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
