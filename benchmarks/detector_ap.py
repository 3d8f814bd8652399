"""Detection AP50 of a heatmap-detector checkpoint against OpenCV's HOG, on the same frames.

For every sequence: run the checkpoint through the streaming detector (all frames, so the
T-frame windows see real neighbours) and HOG on the evaluated frames (every ``--step``-th
labelled frame), then score both with ``heatrack.eval.detection`` (ignore regions honoured).
Say which sequences the checkpoint trained on: only the others are held out.

    python benchmarks/detector_ap.py --checkpoint runs/detector-t3/last.pt \
        --seqs MOT15/train/TUD-Stadtmitte MOT17-mini/train/MOT17-05-FRCNN --step 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hog_baseline import hog_detect  # noqa: E402

from heatrack.eval.detection import evaluate_detections  # noqa: E402
from heatrack.inference import Detector, InferenceConfig  # noqa: E402
from heatrack.io.mot import MotRows, read_gt  # noqa: E402
from heatrack.io.sources import MotSequenceSource  # noqa: E402
from heatrack.models.decode import DecodeConfig  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _keep_frames(source, wanted: set[int], images: dict):
    """Pass every frame on, keeping copies of the evaluated ones for HOG."""
    for index, image in source:
        if index in wanted:
            images[index] = image
        yield index, image


def rows_of(per_frame: list[tuple[int, np.ndarray, np.ndarray]]) -> MotRows:
    frames = np.concatenate([np.full(len(s), f) for f, _, s in per_frame] or [np.zeros(0)])
    xywh = np.concatenate([b for _, b, _ in per_frame] or [np.zeros((0, 4))]).reshape(-1, 4)
    scores = np.concatenate([s for _, _, s in per_frame] or [np.zeros(0)])
    n = len(frames)
    return MotRows(
        frames.astype(np.int64), np.full(n, -1), xywh, scores, np.ones(n, np.int64), np.ones(n)
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument(
        "--seqs", nargs="+", required=True, help="sequence folders under ../shared/data"
    )
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--long-side", type=int, default=512)
    ap.add_argument("--score-threshold", type=float, default=0.05)
    ap.add_argument("--hog-upscale", type=float, default=1.5)
    args = ap.parse_args()
    config = InferenceConfig(decode=DecodeConfig(score_threshold=args.score_threshold)).sized(
        args.long_side
    )
    detector = Detector.from_checkpoint(args.checkpoint, config)
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    print(f"checkpoint {args.checkpoint}; date {time.strftime('%Y-%m-%d')}")
    print("| sequence | frames | heatrack AP50 | HOG AP50 | AP50 gain |")
    print("|---|---:|---:|---:|---:|")
    for rel in args.seqs:
        folder = DATA / rel
        gt = read_gt(folder / "gt" / "gt.txt")
        wanted = set(sorted(set(gt.frames.tolist()))[:: args.step])
        images: dict[int, np.ndarray] = {}
        stream = detector.stream(_keep_frames(MotSequenceSource(folder), wanted, images))
        ours = [(i, d.xywh, d.scores) for i, d, _ in stream if i in wanted]
        theirs = []
        for index in sorted(images):
            rects, weights = hog_detect(images[index], hog, args.hog_upscale)
            theirs.append((index, rects, weights))
        done = sorted(images)
        a = evaluate_detections(gt, rows_of(ours), frames=done)["AP50"]
        b = evaluate_detections(gt, rows_of(theirs), frames=done)["AP50"]
        print(f"| {folder.name} | {len(done)} | {a:.3f} | {b:.3f} | {a - b:+.3f} |", flush=True)


if __name__ == "__main__":
    main()
