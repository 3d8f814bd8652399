#!/usr/bin/env bash
# Run the whole test suite: adds the Ray extra (its tests run a real local Ray) to the .venv
# that scripts/install.sh made, then pytest with any arguments given.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/install.sh
.venv/bin/python -m pip install --quiet -e ".[dev,ray]"
exec .venv/bin/python -m pytest "$@"
