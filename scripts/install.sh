#!/usr/bin/env bash
# Create .venv and install heatrack with its test tools.
# torch goes first as the CPU build (pip install torch==2.13.0): on this kind of machine pip
# takes that wheel from the local disk instead of downloading a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/python -c "import heatrack, torch, cv2; print('installed heatrack', heatrack.__version__, '| torch', torch.__version__, '| opencv', cv2.__version__)"
