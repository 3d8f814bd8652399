"""Where a fold model's AP50 on one sequence differs from YOLOX-nano's: AP at several IoU
thresholds, precision at several recalls, and what the most confident false boxes lie on.

Both detectors on the same frames as ``detector_sources.py`` (every ``--step``-th labelled
frame; YOLOX-nano's boxes read from, or written to, that benchmark's cache). A false box with
no ground-truth row of any class within IoU 0.1 is "away from every labelled person": clutter,
or a person the ground truth leaves out.

    python benchmarks/detector_pr.py --checkpoint runs/sources-overlap/PETS09-S2L1/last.pt \\
        --sequence PETS09-S2L1 --step 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detector_sources import ROOT, YOLOX, cached, frames_of, heatrack_rows  # noqa: E402

from heatrack.boxes import iou_matrix  # noqa: E402
from heatrack.eval.detection import (  # noqa: E402
    APConfig,
    evaluate_detections,
    match_frame,
    scored_boxes,
)
from heatrack.inference import Detector, InferenceConfig  # noqa: E402
from heatrack.models.decode import DecodeConfig  # noqa: E402
from heatrack.models.yolox import YoloxPeople  # noqa: E402

IOUS = (0.3, 0.4, 0.5, 0.6, 0.7)
RECALLS = (0.5, 0.7, 0.8, 0.9, 0.93)


def labelled(gt_rows, dets):
    """(scores, labels 1/0, false boxes as (score, IoU with any gt row), gt to find) of one
    frame; ``gt_rows`` or ``dets`` may be None (nothing there)."""
    pos, ignore = scored_boxes(gt_rows)
    if dets is None or len(dets) == 0:
        return np.zeros(0), np.zeros(0, np.int64), [], len(pos)
    labels = match_frame(dets.xyxy, dets.conf, pos, ignore)
    false = labels == 0
    near = np.zeros(int(false.sum()))
    if gt_rows is not None and len(gt_rows):
        near = iou_matrix(dets.xyxy[false], gt_rows.xyxy).max(axis=1)
    keep = labels >= 0
    return dets.conf[keep], labels[keep], list(zip(dets.conf[false], near, strict=True)), len(pos)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--sequence", choices=["PETS09-S2L1", "TUD-Stadtmitte"], required=True)
    ap.add_argument("--step", type=int, default=5)
    ap.add_argument("--top", type=int, default=60, help="most confident false boxes looked at")
    ap.add_argument("--cache", type=Path, default=ROOT / "outputs" / "baselines")
    args = ap.parse_args()
    config = InferenceConfig(decode=DecodeConfig(score_threshold=0.01, top_k=1000))
    detector = Detector.from_checkpoint(args.checkpoint, config)
    yolox = YoloxPeople(YOLOX, score_threshold=0.01)
    part, gt, evaluated, every = next(frames_of(args.sequence, args.step))
    done = [i for i, _ in evaluated]
    models = {
        "heatrack": heatrack_rows(detector, evaluated, every),
        "YOLOX-nano": cached(
            args.cache / f"yolox-{part}-{args.step}.npz",
            lambda: [(i, d.xywh, d.scores) for i, d, _ in yolox.stream(evaluated)],
        ),  # fmt: skip
    }
    gt_by = dict(gt.by_frame())
    print(f"{args.sequence}, every {args.step}th labelled frame ({len(done)} frames)\n")
    print("| detector | " + " | ".join(f"AP@{t}" for t in IOUS) + " | "
          + " | ".join(f"P@R{r}" for r in RECALLS) + " | max recall | top false boxes "
          "away from every labelled person |")  # fmt: skip
    print("|---|" + "---:|" * (len(IOUS) + len(RECALLS) + 2))
    for name, rows in models.items():
        aps = [evaluate_detections(gt, rows, frames=done, cfg=APConfig(iou_threshold=t))["AP50"]
               for t in IOUS]  # fmt: skip
        by = dict(rows.by_frame())
        scores, labels, false, n_gt = [], [], [], 0
        for f in done:
            s, lab, fa, n = labelled(gt_by.get(f), by.get(f))
            scores.append(s)
            labels.append(lab)
            false += fa
            n_gt += n
        s, lab = np.concatenate(scores), np.concatenate(labels)
        order = np.argsort(-s, kind="stable")
        tp = np.cumsum(lab[order] == 1)
        recall, precision = tp / n_gt, tp / np.arange(1, len(order) + 1)
        at = [precision[np.searchsorted(recall, r)] if recall[-1] >= r else float("nan")
              for r in RECALLS]  # fmt: skip
        top = sorted(false, key=lambda x: -x[0])[: args.top]
        away = sum(1 for _, near in top if near < 0.1)
        cells = [f"{a:.3f}" for a in aps] + [f"{p:.3f}" for p in at]
        print(f"| {name} | " + " | ".join(cells) + f" | {recall[-1]:.3f} | {away} of "
              f"{len(top)} (scores {top[-1][0]:.2f}-{top[0][0]:.2f}) |")  # fmt: skip


if __name__ == "__main__":
    main()
