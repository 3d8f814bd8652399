"""Confident false boxes of one fold model on one source, from ``detector_scale_ranges.py``'s
cached per-pass boxes: how many score above ``--score``, how tall, and how many lie inside a
ground-truth box (parts of people) rather than elsewhere in the scene.

    python benchmarks/detector_false_boxes.py --cache outputs/scale-ranges \
        --model PETS09-S2L1 --source PETS09-S2L1 --side 512
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detector_scale_ranges import load_boxes  # noqa: E402
from detector_sources import SOURCES, frames_of  # noqa: E402

from heatrack.boxes import box_areas  # noqa: E402
from heatrack.eval.detection import APConfig, match_frame  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--folds", default="sources-distill")
    ap.add_argument("--model", choices=sorted(SOURCES), required=True)
    ap.add_argument("--source", choices=sorted(SOURCES), required=True)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--step", type=int, default=5, help="as the cache was made (PETS09: 5)")
    ap.add_argument("--score", type=float, default=0.5)
    args = ap.parse_args()
    cfg = APConfig()
    false, true, heights, inside, people = 0, 0, [], [], 0
    for part, gt, evaluated, _ in frames_of(args.source, args.step):
        path = args.cache / args.folds / args.model / f"{part}-{args.step}-{args.side}.npz"
        if not path.is_file():
            raise SystemExit(f"{path}: no cached boxes (run detector_scale_ranges.py first)")
        found = load_boxes(path, None)
        by_frame = dict(gt.by_frame())
        for i, _ in evaluated:
            g, d = by_frame.get(i), found.get(i)
            if g is None or d is None:
                continue
            ped, vis = g.pedestrian_mask(), g.visibility >= cfg.min_visibility
            pos, ign = g.xyxy[ped & vis], g.xyxy[g.ignore_mask() | (ped & ~vis)]
            people += len(pos)
            labels = match_frame(d.xyxy, d.scores, pos, ign, cfg)
            confident = d.scores > args.score
            true += int(((labels == 1) & confident).sum())
            bad = (labels == 0) & confident
            false += int(bad.sum())
            box = d.xyxy[bad]
            heights.append(box[:, 3] - box[:, 1])
            lo = np.maximum(box[:, None, :2], g.xyxy[None, :, :2])
            hi = np.minimum(box[:, None, 2:], g.xyxy[None, :, 2:])
            area = np.maximum(box_areas(box), 1e-9)[:, None]
            overlap = np.clip(hi - lo, 0, None).prod(axis=2) / area
            inside.append(overlap.max(axis=1) >= 0.8 if len(g.xyxy) else np.zeros(len(box), bool))
    heights, inside = np.concatenate(heights), np.concatenate(inside)
    print(f"{args.model} fold on {args.source} at {args.side} px: {people} people; above "
          f"{args.score}: {true} true, {false} false (median height "
          f"{np.median(heights):.1f} px, {inside.mean():.0%} inside a gt box)")  # fmt: skip


if __name__ == "__main__":
    main()
