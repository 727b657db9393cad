#!/usr/bin/env bash
# Lint, type-check and run the tests: the fast suite in parallel, then the slow one.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONHASHSEED=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/mypy augmentgen
.venv/bin/python -m pytest -q -m "not slow" -n 2 --timeout 600
rc=0
.venv/bin/python -m pytest -q -m slow --timeout 1200 || rc=$?
# exit 5 means no slow test was collected, which is fine
if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then exit "$rc"; fi
