"""How a detector's peak scores run on video no label describes: do the tracker thresholds
carried by one detector suit another?

For each checkpoint and each unlabelled video in ../shared/data/videos, the detector streams
the first ``--frames`` frames with a low decode threshold; the table gives the boxes per frame
at or above each of ``--thresholds`` and percentiles of the scores above the decode threshold.
Two detectors whose rows agree see these scenes on the same scale.

    python benchmarks/score_profile.py --checkpoint runs/folds/fold-A/last.pt \
        --checkpoint heatrack/assets/models/detector.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from pathlib import Path

import numpy as np

from heatrack.inference import load_detector
from heatrack.io.sources import open_source

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--checkpoint", action="append", required=True)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--decode-threshold", type=float, default=0.1)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.5])
    args = ap.parse_args()
    at = " | ".join(f">= {t:g}" for t in args.thresholds)
    print(f"Date {time.strftime('%Y-%m-%d')}; first {args.frames} frames of each video.\n")
    print(f"| checkpoint | video | boxes/frame {at} | score p50 | score p90 |")
    print("|---|---|" + "---:|" * (len(args.thresholds) + 2))
    for ckpt in args.checkpoint:
        detector = load_detector(ckpt)
        decode = dataclasses.replace(detector.config.decode, score_threshold=args.decode_threshold)
        detector.config = dataclasses.replace(detector.config, decode=decode)
        for video in sorted(VIDEOS.glob("*.mp4")):
            frames = itertools.islice(open_source(video), args.frames)
            per_frame = [dets.scores for _, dets, _ in detector.stream(frames)]
            scores = np.concatenate(per_frame)
            rates = " | ".join(
                f"{(scores >= t).sum() / len(per_frame):.1f}" for t in args.thresholds
            )
            p50, p90 = np.percentile(scores, [50, 90]) if len(scores) else (np.nan, np.nan)
            print(f"| {ckpt} | {video.stem} | {rates} | {p50:.2f} | {p90:.2f} |", flush=True)


if __name__ == "__main__":
    main()
