"""Detection average precision at IoU 0.5, with ignore regions honoured.

Per frame, detections are taken in descending score over the whole evaluation and matched
greedily: a detection is a true positive when its best still-unmatched gt pedestrian has IoU
>= ``iou_threshold``; otherwise, if it lies on an ignore region (IoU >= ``iou_threshold`` with an
ignored box, or at least half of it inside one), it is dropped, neither right nor wrong;
otherwise it is a false positive. AP is the area under the precision-recall curve with
precision made monotone (the VOC "all points" rule).

Which gt counts: rows :meth:`MotRows.pedestrian_mask` calls pedestrians (MOT17: class 1 with
conf 1; MOT15: conf != 0) and at least ``min_visibility`` visible. Ignored: distractor classes
(person on vehicle, static person, distractor, reflection) and pedestrians less visible than
that: a detector is neither rewarded nor punished for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from heatrack.boxes import iou_matrix
from heatrack.io.mot import MotRows


@dataclass(frozen=True)
class APConfig:
    iou_threshold: float = 0.5
    min_visibility: float = 0.25


def _ioa(det: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Fraction of each detection's area inside each region: (N, M)."""
    lt = np.maximum(det[:, None, :2], regions[None, :, :2])
    rb = np.minimum(det[:, None, 2:], regions[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = np.clip((det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1]), 1e-12, None)
    return inter / area[:, None]


def scored_boxes(gt: MotRows | None, cfg: APConfig = APConfig()) -> tuple[np.ndarray, np.ndarray]:
    """One frame's gt as (pedestrians a detector must find, regions it is not judged on),
    both xyxy."""
    if gt is None:
        return np.zeros((0, 4)), np.zeros((0, 4))
    ped = gt.pedestrian_mask()
    visible = gt.visibility >= cfg.min_visibility
    return gt.xyxy[ped & visible], gt.xyxy[gt.ignore_mask() | (ped & ~visible)]


def match_frame(det_xyxy, det_scores, gt_xyxy, ignore_xyxy, cfg: APConfig = APConfig()):
    """Label one frame's detections: 1 true positive, 0 false positive, -1 ignored."""
    order = np.argsort(-np.asarray(det_scores), kind="stable")
    labels = np.zeros(len(det_scores), np.int64)
    iou = iou_matrix(det_xyxy, gt_xyxy)
    taken = np.zeros(len(gt_xyxy), bool)
    if len(ignore_xyxy):
        on_ignore = (iou_matrix(det_xyxy, ignore_xyxy).max(axis=1) >= cfg.iou_threshold) | (
            _ioa(np.asarray(det_xyxy, np.float64), np.asarray(ignore_xyxy, np.float64)).max(axis=1)
            >= 0.5
        )
    else:
        on_ignore = np.zeros(len(det_scores), bool)
    for d in order:
        if len(gt_xyxy):
            cand = np.where(taken, -1.0, iou[d])
            g = int(np.argmax(cand))
            if cand[g] >= cfg.iou_threshold:
                taken[g] = True
                labels[d] = 1
                continue
        labels[d] = -1 if on_ignore[d] else 0
    return labels


def average_precision(scores: np.ndarray, labels: np.ndarray, n_gt: int) -> float:
    """AP from pooled detections (labels 1 / 0; ignored ones removed beforehand)."""
    if n_gt == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(labels[order] == 1)
    fp = np.cumsum(labels[order] == 0)
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, 1)
    # Monotone precision envelope, then area under the step curve.
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def evaluate_detections(
    gt: MotRows, dets: MotRows, frames: Iterable[int] | None = None, cfg: APConfig = APConfig()
) -> dict:
    """AP50 and counts over ``frames`` (default: every frame with gt rows)."""
    gt_by = dict(gt.by_frame())
    det_by = dict(dets.by_frame())
    frames = sorted(gt_by) if frames is None else list(frames)
    all_scores, all_labels, n_gt = [], [], 0
    for f in frames:
        pos, ign = scored_boxes(gt_by.get(f), cfg)
        n_gt += len(pos)
        d = det_by.get(f)
        if d is None or len(d) == 0:
            continue
        labels = match_frame(d.xyxy, d.conf, pos, ign, cfg)
        keep = labels >= 0
        all_scores.append(d.conf[keep])
        all_labels.append(labels[keep])
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    labels = np.concatenate(all_labels) if all_labels else np.zeros(0, np.int64)
    return {
        "AP50": average_precision(scores, labels, n_gt),
        "gt": n_gt,
        "detections": int(len(labels)),
        "true_positives": int((labels == 1).sum()),
        "frames": len(frames),
    }
