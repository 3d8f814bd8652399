"""Where a detector's AP goes: box quality and recall by person height, beside YOLOX-nano.

On one labelled source (``detector_sources.SOURCES``), for each model: AP50 (as
``detector_sources.py`` scores it), then, matching every ground-truth person at least 25 %
visible to its best box above the score threshold, the share found at IoU 0.5 and the median
best IoU per height bucket (50 px), and the median and median absolute deviation of detected
/ true width and height. Models: heatrack checkpoints (``--checkpoint``), a levels model
holding YOLOX-nano's head untrained (``--levels-untrained``: what fine-tuning starts from),
and YOLOX-nano itself (416 letterbox, its NMS), always.

``--yolox-levels`` instead prints which level of YOLOX-nano's head (stride 8, 16, 32) finds
people of what size (sqrt(w h) in input pixels, over five sources): the basis of
``TargetConfig.level_bounds``.

    python benchmarks/detector_boxes.py --checkpoint runs/sources/TUD-Stadtmitte/last.pt
    python benchmarks/detector_boxes.py --levels-untrained --long-side 416
    python benchmarks/detector_boxes.py --yolox-levels
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detector_sources import ROOT, SOURCES, YOLOX, cached, frames_of, heatrack_rows  # noqa: E402

from heatrack.boxes import iou_matrix, xywh_to_xyxy  # noqa: E402
from heatrack.eval.detection import evaluate_detections  # noqa: E402
from heatrack.inference import Detector, InferenceConfig  # noqa: E402
from heatrack.models import yolox  # noqa: E402
from heatrack.models.decode import DecodeConfig  # noqa: E402
from heatrack.models.heatmap import HeatmapNet, HeatmapNetConfig  # noqa: E402


def box_quality(gt, rows, frames, threshold: float) -> dict:
    """Recall at IoU 0.5 and median best IoU per 50 px height bucket; size ratios."""
    buckets: dict[int, list[float]] = {}
    ratios = []
    for f in frames:
        keep = (gt.frames == f) & (gt.visibility >= 0.25) & gt.pedestrian_mask()
        people = xywh_to_xyxy(gt.xywh[keep])
        found = xywh_to_xyxy(rows.xywh[(rows.frames == f) & (rows.conf >= threshold)])
        if not len(people):
            continue
        overlap = iou_matrix(people, found) if len(found) else np.zeros((len(people), 1))
        best = overlap.max(axis=1)
        for height, b in zip(people[:, 3] - people[:, 1], best, strict=True):
            buckets.setdefault(min(int(height // 50), 6) * 50, []).append(float(b))
        matched = best > 0.3
        if len(found) and matched.any():
            mine = found[overlap.argmax(axis=1)[matched]]
            theirs = people[matched]
            ratios.append((mine[:, 2:] - mine[:, :2]) / (theirs[:, 2:] - theirs[:, :2]))
    r = np.concatenate(ratios) if ratios else np.zeros((0, 2))
    median = np.median(r, axis=0)
    return {
        "buckets": {h: (len(v), float(np.mean(np.array(v) >= 0.5)), float(np.median(v)))
                    for h, v in sorted(buckets.items())},  # fmt: skip
        "width_ratio": float(median[0]), "height_ratio": float(median[1]),
        "width_mad": float(np.median(np.abs(r[:, 0] - median[0]))),
        "height_mad": float(np.median(np.abs(r[:, 1] - median[1]))),
    }  # fmt: skip


def yolox_levels() -> None:
    """Which stride of YOLOX-nano's head gives each box its NMS keeps (score >= 0.3)."""
    model = yolox.YoloxPeople(YOLOX, score_threshold=0.3)
    cells, strides = yolox.grid(model.input_size)
    found = []
    for source, step in (("TUD-Stadtmitte", 3), ("coco128", 1), ("cctv-clinic", 2),
                         ("PETS09-S2L1", 10), ("capston2", 4)):  # fmt: skip
        for _, _, evaluated, _ in frames_of(source, step):
            for _, image in evaluated:
                x, ratio = yolox.letterbox(image, model.input_size)
                (out,) = model.session.run(None, {model.input_name: x})
                score = out[0, :, 4] * out[0, :, 5]
                dets = yolox.decode_people(out[0], model.input_size, ratio, 0.3, model.nms_iou)
                for box, s in zip(dets.xyxy, dets.scores, strict=True):
                    w, h = (box[2:] - box[:2]) * ratio
                    found.append((strides[np.argmin(np.abs(score - s))], np.sqrt(w * h), h))
    found = np.array(found)
    for s in yolox.STRIDES:
        level = found[found[:, 0] == s]
        pct = np.percentile(level[:, 1], [5, 25, 50, 75, 95]).round(1)
        print(f"stride {s}: {len(level)} people, sqrt(w h) at 5/25/50/75/95 %: {pct}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--checkpoint", nargs="*", type=Path, default=[])
    ap.add_argument("--levels-untrained", action="store_true")
    ap.add_argument("--yolox-levels", action="store_true")
    ap.add_argument("--source", choices=sorted(SOURCES), default="TUD-Stadtmitte")
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--long-side", type=int, default=512)
    ap.add_argument("--peak-window", type=int, default=DecodeConfig.level_peak_window,
                    help="levels models: DecodeConfig.level_peak_window")  # fmt: skip
    ap.add_argument("--threshold", type=float, default=0.2, help="heatrack's score threshold")
    ap.add_argument("--cache", type=Path, default=ROOT / "outputs" / "baselines")
    args = ap.parse_args()
    if args.yolox_levels:
        yolox_levels()
        return
    decode = DecodeConfig(score_threshold=0.05, level_peak_window=args.peak_window)
    config = InferenceConfig(decode=decode).sized(args.long_side)
    models = [(str(c), Detector.from_checkpoint(c, config)) for c in args.checkpoint]
    if args.levels_untrained:
        net = HeatmapNet(HeatmapNetConfig(backbone="yolox_nano", head="levels",
                                          backbone_weights=str(YOLOX)))  # fmt: skip
        models.append(("levels, untrained (YOLOX-nano's head)", Detector(net, config)))
    teacher = yolox.YoloxPeople(YOLOX, score_threshold=0.01)
    ((part, gt, evaluated, every),) = list(frames_of(args.source, args.step))[:1]
    frames = [i for i, _ in evaluated]
    results = [(name, heatrack_rows(d, evaluated, every), args.threshold) for name, d in models]
    theirs = cached(args.cache / f"yolox-{part}-{args.step}.npz", lambda: [
        (i, d.xywh, d.scores) for i, d, _ in teacher.stream(evaluated)])  # fmt: skip
    results.append(("YOLOX-nano (416, NMS)", theirs, 0.3))
    print(f"{args.source} ({part}), {len(frames)} frames, heatrack at {args.long_side} px")
    for name, rows, threshold in results:
        ap50 = evaluate_detections(gt, rows, frames=frames)["AP50"]
        q = box_quality(gt, rows, frames, threshold)
        buckets = ", ".join(f"{h}-{h + 50} px: {n} people, {rec:.3f} found, median IoU {iou:.3f}"
                            for h, (n, rec, iou) in q["buckets"].items())  # fmt: skip
        print(f"{name}: AP50 {ap50:.3f}; at score {threshold}: {buckets}; width x "
              f"{q['width_ratio']:.3f} (MAD {q['width_mad']:.3f}), height x "
              f"{q['height_ratio']:.3f} (MAD {q['height_mad']:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
