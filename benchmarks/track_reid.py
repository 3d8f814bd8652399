"""What appearance buys the tracker: the same detections tracked with and without embeddings.

On the real videos with ground truth (PETS09-S2L1, TUD-Stadtmitte), from the MOT15 public
detections (the detection set of benchmarks/track_peers.py), heatrack's tracker runs with its
defaults, then again with appearance from an embedder that never saw that sequence (the
held-out fold model of benchmarks/reid_eval.py). Also timed: the embedding cost per frame.

    python benchmarks/track_reid.py --fold PETS09-S2L1=runs/reid-pets/last.pt \
        --fold TUD-Stadtmitte=runs/reid-tud/last.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import yaml

from heatrack.data.reid import CropConfig, collect_crops
from heatrack.eval.mot import COMBINED, SequenceData, evaluate
from heatrack.io.cache import FrameCache
from heatrack.io.mot import read_gt, read_seqinfo
from heatrack.models.reid import calibrate, load_embedder
from heatrack.pipeline import track_public_detections
from heatrack.tracking.tracker import TrackerConfig

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "MOT15" / "train"
COLUMNS = ("HOTA", "AssA", "IDF1", "IDSW", "MOTA")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--fold", action="append", required=True, metavar="SEQ=CHECKPOINT")
    ap.add_argument(
        "--colour-weight",
        type=float,
        default=0.0,
        help="mix in clothing colour (EmbedderConfig.colour_weight); thresholds are then "
        "recalibrated on the other real sequence's people",
    )
    ap.add_argument(
        "--clear-margin",
        type=float,
        default=TrackerConfig().appearance_clear_margin,
        help="TrackerConfig.appearance_clear_margin (0: appearance may override any IoU match)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a TrackerConfig field over the embedder's thresholds and the defaults (repeatable)",
    )
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "cache" / "frames")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "track_reid.md")
    args = ap.parse_args()
    folds = dict(f.split("=", 1) for f in args.fold)
    overrides = {k: yaml.safe_load(v) for k, v in (f.split("=", 1) for f in args.set)}
    config = TrackerConfig(appearance_clear_margin=args.clear_margin)
    lines = [
        f"Date {time.strftime('%Y-%m-%d')}. MOT15 public detections, TrackerConfig defaults.",
        "",
        "| sequence | appearance | " + " | ".join(COLUMNS) + " | s/frame (decode, embed, track) |",
        "|---|---|" + "---:|" * (len(COLUMNS) + 1),
    ]
    for seq, ckpt in folds.items():
        folder = DATA / seq
        info = read_seqinfo(folder)
        gt = read_gt(folder / "gt" / "gt.txt")
        embedder = load_embedder(ckpt)
        if args.colour_weight > 0:
            embedder.config = dataclasses.replace(embedder.config, colour_weight=args.colour_weight)
            others = [DATA / s for s in folds if s != seq]
            crops = collect_crops(others, FrameCache(args.cache_dir), CropConfig())
            embedder.meta = {**embedder.meta, "tracker": calibrate(embedder, crops)}
        name = f"embedder ({Path(ckpt).parent.name})"
        if args.colour_weight > 0:
            name = f"embedder + colour {args.colour_weight:g} ({Path(ckpt).parent.name})"
        for label, emb in (("none", None), (name, embedder)):
            t = time.perf_counter()
            run_config = config
            if emb is not None:  # the embedder's own calibrated thresholds
                run_config = dataclasses.replace(config, **emb.meta.get("tracker", {}))
                run_config = dataclasses.replace(run_config, **overrides)
            _, rows = track_public_detections(
                folder, folder / "det" / "det.txt", run_config, embedder=emb
            )
            per_frame = (time.perf_counter() - t) / info.length
            m = evaluate([SequenceData(seq, info.length, gt, rows)])[COMBINED]
            cells = [f"{m[c]:.2f}" if c not in ("IDSW",) else f"{int(m[c])}" for c in COLUMNS]
            timing = f"{per_frame:.4f}" if emb is not None else "-"
            lines.append(f"| {seq} | {label} | " + " | ".join(cells) + f" | {timing} |")
            print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
