#!/usr/bin/env bash
# Ship an embedder checkpoint: heatrack/assets/models/embedder.pt (torch) and its int8 ONNX
# export embedder-int8.onnx (the default, onnxruntime backend), each with tracker thresholds
# calibrated on its own distances over the MOT17-mini people it trained on.
#   bash scripts/ship_embedder.sh runs/reid-224d/soup7.pt '{"version": "0.2", ...}'
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=$1
META=${2:-"{}"}
PY=.venv/bin/python
D=../shared/data
MOT="$D/MOT17-mini/train/MOT17-02-FRCNN $D/MOT17-mini/train/MOT17-04-FRCNN $D/MOT17-mini/train/MOT17-05-FRCNN $D/MOT17-mini/train/MOT17-09-FRCNN"
OUT=heatrack/assets/models
merge() { $PY -c 'import json,sys; print(json.dumps({**json.loads(sys.argv[1]), **json.loads(sys.argv[2])}))' "$1" "$2"; }
thresholds=$($PY benchmarks/reid_checkpoints.py thresholds "$CKPT" $MOT | tail -1)
.venv/bin/heatrack export --model embedder --checkpoint "$CKPT" --output $OUT/embedder.pt \
    --meta "$(merge "$META" "$thresholds")"
.venv/bin/heatrack export --model embedder --format onnx --checkpoint $OUT/embedder.pt \
    --output $OUT/embedder-int8 --int8 --calibration $D/reid/cuhk03-detected/train $MOT
# int8 moves distances a little: its own thresholds, written into its sidecar
thresholds=$($PY benchmarks/reid_checkpoints.py thresholds $OUT/embedder-int8.json $MOT | tail -1)
$PY -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d["meta"].update(json.loads(sys.argv[2]))
open(p, "w").write(json.dumps(d, indent=2) + "\n")' $OUT/embedder-int8.json "$thresholds"
ls -la $OUT/embedder*
