#!/usr/bin/env bash
# Set everything up from nothing and run the main job on the example shipped in the package:
# track a synthetic street scene from its noisy detections, then score it with TrackEval.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
EXAMPLES=heatrack/assets/examples
OUT=outputs/quickstart
.venv/bin/heatrack track "$EXAMPLES/SYNTH-DEMO" --detections "$EXAMPLES/SYNTH-DEMO/det/det.txt" --output "$OUT"
.venv/bin/heatrack eval --gt "$EXAMPLES" --results "$OUT" --json "$OUT/metrics.json"
echo "Tracks: $OUT/SYNTH-DEMO.txt   metrics: $OUT/metrics.json"
