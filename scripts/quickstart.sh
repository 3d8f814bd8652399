#!/usr/bin/env bash
# Set everything up from nothing and run the main job with the shipped models on a real
# pedestrian clip: PETS 2009 S2L1 as Debian's opencv-doc ships it (vtest.avi). Where that
# package cannot be installed (no root, not Debian), a synthetic street clip is used instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
CLIP=/usr/share/doc/opencv-doc/examples/data/vtest.avi
if [ ! -f "$CLIP" ] && command -v apt-get >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo "sudo -n")
  echo "Installing Debian's opencv-doc for its PETS 2009 clip (vtest.avi)..."
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      $SUDO apt-get install -y -qq --no-install-recommends opencv-doc; } >/dev/null 2>&1 || true
fi
OUT=outputs/quickstart
if [ ! -f "$CLIP" ]; then
  echo "opencv-doc unavailable: tracking a synthetic street clip instead."
  .venv/bin/heatrack synth outputs/clips --name synthetic-street --frames 200 --people 10 \
    --width 640 --height 360 --video >/dev/null
  CLIP=outputs/clips/synthetic-street/synthetic-street.avi
fi
.venv/bin/heatrack track "$CLIP" --output "$OUT" --render
