"""OpenCV's HOG people detector (opencv 4.x) as the classical baseline for detection AP50.

Runs ``cv2.HOGDescriptor_getDefaultPeopleDetector`` with ``detectMultiScale`` on the frames of
each sequence (every ``--step``-th labelled frame), keeps its SVM weights as scores, writes
``<out>/<seq>.txt`` and prints AP50 through ``heatrack.eval.detection`` (ignore regions
honoured). HOG's window is 64x128, so small people are only found when the frame is enlarged:
``--upscale`` (default 1.5) resizes frames first. The same frames, ``--step`` and scoring serve
for heatrack's detector in benchmarks/detector_ap.py.

    python benchmarks/hog_baseline.py --seqs MOT15/train/TUD-Stadtmitte \
        MOT17-mini/train/MOT17-05-FRCNN --step 2 --out outputs/hog
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from heatrack.eval.detection import evaluate_detections
from heatrack.io.mot import read_detections, read_gt, write_results
from heatrack.io.sources import MotSequenceSource

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def hog_detect(image: np.ndarray, hog: cv2.HOGDescriptor, upscale: float):
    if upscale != 1.0:
        image = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
    rects, weights = hog.detectMultiScale(image, winStride=(8, 8), padding=(8, 8), scale=1.05)
    rects = np.asarray(rects, np.float64).reshape(-1, 4) / upscale
    # The 64x128 window holds a margin around the person; OpenCV's own peopledetect sample
    # trims 15 % of the width and 5 % of the height on each side before drawing. Do the same,
    # or HOG's boxes rarely reach IoU 0.5 with tight ground truth.
    x, y, w, h = rects.T
    rects = np.stack([x + 0.15 * w, y + 0.05 * h, 0.7 * w, 0.9 * h], axis=1)
    return rects, np.asarray(weights, np.float64).reshape(-1)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--seqs", nargs="+", required=True, help="sequence folders under ../shared/data"
    )
    ap.add_argument("--step", type=int, default=1, help="use every step-th labelled frame")
    ap.add_argument("--upscale", type=float, default=1.5)
    ap.add_argument("--out", type=Path, default=Path("outputs/hog"))
    args = ap.parse_args()
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    summary = {}
    for rel in args.seqs:
        folder = DATA / rel
        gt = read_gt(folder / "gt" / "gt.txt")
        labelled = sorted(set(gt.frames.tolist()))[:: args.step]
        wanted = set(labelled)
        frames, boxes, scores, seconds = [], [], [], 0.0
        source = MotSequenceSource(folder)
        for index, image in source:
            if index not in wanted:
                continue
            start = time.perf_counter()
            rects, weights = hog_detect(image, hog, args.upscale)
            seconds += time.perf_counter() - start
            frames.append(np.full(len(rects), index))
            boxes.append(rects)
            scores.append(weights)
        frames, boxes, scores = (
            np.concatenate(frames),
            np.concatenate(boxes),
            np.concatenate(scores),
        )
        write_results(
            args.out / f"{source.name}.txt", frames, np.full(len(frames), -1), boxes, scores
        )
        dets = read_detections(args.out / f"{source.name}.txt")
        done = sorted(wanted - set(source.skipped))
        result = evaluate_detections(gt, dets, frames=done)
        result["ms_per_frame"] = 1000 * seconds / max(len(done), 1)
        summary[source.name] = result
        print(
            f"{source.name:22s} HOG AP50 {result['AP50']:.3f} on {len(done)} frames "
            f"({result['ms_per_frame']:.0f} ms/frame, upscale {args.upscale})"
        )
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
