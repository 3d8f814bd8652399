"""Embedder checkpoints for the ReID experiments of BENCHMARKS.md (issue 17), and their speed.

    # the same weights, read at another input size (the network is fully convolutional)
    python benchmarks/reid_checkpoints.py input runs/reid-start/last.pt 224 112 \
        runs/reid-start/start224.pt
    # weight average: alpha * trained + (1 - alpha) * start, the trained BNNeck and classifier kept
    python benchmarks/reid_checkpoints.py average runs/reid-224/last.pt \
        runs/reid-start/last.pt 0.7 runs/reid-224/soup7.pt
    # crops per second on ONNX Runtime, batches of 32, preprocessing included (random crops)
    python benchmarks/reid_checkpoints.py speed runs/reid-224/last.pt runs/reid-start/last.pt
    # tracker thresholds (heatrack.models.reid.calibrate) of a checkpoint or an export, on the
    # people of MOT sequences it trained on, as JSON for ``heatrack export --meta``
    python benchmarks/reid_checkpoints.py thresholds runs/reid-224/soup7.pt \
        ../shared/data/MOT17-mini/train/MOT17-02-FRCNN ...

``runs/reid-start/last.pt`` is the MSMT17 start unchanged: ``heatrack train reid --config
configs/reid-osnet.yaml --data-root ../shared/data --set engine.epochs=1 --set
batches_per_epoch=2 --set engine.lr=0.0 --set engine.warmup_steps=0 --out-dir runs/reid-start``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reid_eval import OSNET_ONNX, OsnetOnnx, _Batched, throughput  # noqa: E402

from heatrack.models.reid import load_embedder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("input")
    p.add_argument("checkpoint")
    p.add_argument("height", type=int)
    p.add_argument("width", type=int)
    p.add_argument("output")
    p = sub.add_parser("average")
    p.add_argument("trained")
    p.add_argument("start")
    p.add_argument("alpha", type=float)
    p.add_argument("output")
    p = sub.add_parser("speed")
    p.add_argument("checkpoints", nargs="+")
    p = sub.add_parser("thresholds")
    p.add_argument("checkpoint")
    p.add_argument("sequences", nargs="+")
    p.add_argument("--cache-dir", default="cache/frames")
    args = ap.parse_args()
    if args.cmd == "input":
        ck = torch.load(args.checkpoint, weights_only=False)
        if "model_config" in ck:  # shipped / exported weights
            ck["model_config"]["input_size"] = [args.height, args.width]
        else:  # a training checkpoint
            ck["extra"]["config"]["model"]["input_size"] = (args.height, args.width)
        torch.save(ck, args.output)
    elif args.cmd == "thresholds":
        from heatrack.data.reid import CropConfig, collect_crops
        from heatrack.io.cache import FrameCache
        from heatrack.models.reid import calibrate

        stored = (288, 144)  # the central view of these, at the model's input, as in training
        crops = collect_crops(
            args.sequences, FrameCache(args.cache_dir), CropConfig(stored_size=stored)
        )
        print(json.dumps({"tracker": calibrate(load_embedder(args.checkpoint), crops)}))
    elif args.cmd == "average":
        trained = torch.load(args.trained, weights_only=False)
        start = torch.load(args.start, weights_only=False)["model"]
        out = copy.deepcopy(trained)
        out.pop("optimizer", None)
        for k, v in trained["model"].items():
            if v.is_floating_point() and not k.startswith(("neck.", "classifier.")):
                out["model"][k] = args.alpha * v + (1 - args.alpha) * start[k]
        torch.save(out, args.output)
    else:
        rng = np.random.default_rng(0)
        for ck in args.checkpoints:
            model = load_embedder(ck, backend="onnxruntime")
            h, w = model.config.input_size
            crops = rng.integers(0, 255, (512, h, w, 3), dtype=np.uint8)
            print(f"{ck} ({h}x{w}): {throughput(_Batched(model, 32), crops, 5):.0f} crops/s")
        crops = rng.integers(0, 255, (512, 256, 128, 3), dtype=np.uint8)
        speed = throughput(OsnetOnnx(OSNET_ONNX), crops, 5)
        print(f"OSNet x0.25 MSMT17 (256x128): {speed:.0f} crops/s")


if __name__ == "__main__":
    main()
