"""Box formats and IoU, vectorised over arrays.

Formats (all pixels, float):
- ``xyxy``: left, top, right, bottom.
- ``xywh``: left, top, width, height (MOTChallenge files).
- ``cxcywh``: centre x, centre y, width, height.
- ``xyah``: centre x, centre y, aspect ratio w / h, height (the Kalman filter's measurement).
"""

from __future__ import annotations

import numpy as np


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:4]], axis=-1)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes)
    return np.concatenate([b[..., :2], b[..., 2:4] - b[..., :2]], axis=-1)


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes)
    wh = b[..., 2:4] - b[..., :2]
    return np.concatenate([b[..., :2] + wh / 2, wh], axis=-1)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes)
    half = b[..., 2:4] / 2
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """Centre, aspect ratio w/h and height; zero-height boxes get aspect 0."""
    c = xyxy_to_cxcywh(boxes)
    w, h = c[..., 2], c[..., 3]
    aspect = np.divide(w, h, out=np.zeros_like(w), where=h > 0)
    return np.stack([c[..., 0], c[..., 1], aspect, h], axis=-1)


def xyah_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes)
    w = b[..., 2] * b[..., 3]
    return cxcywh_to_xyxy(np.stack([b[..., 0], b[..., 1], w, b[..., 3]], axis=-1))


def box_areas(xyxy: np.ndarray) -> np.ndarray:
    b = np.asarray(xyxy)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of ``a`` (N, 4) and of ``b`` (M, 4), both xyxy; returns (N, M).

    Degenerate boxes (zero area) have IoU 0 with everything, never NaN.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    # Written with few numpy calls: the tracker calls this several times per frame.
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.maximum(rb - lt, 0.0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.maximum(a[:, 2] - a[:, 0], 0.0) * np.maximum(a[:, 3] - a[:, 1], 0.0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0.0) * np.maximum(b[:, 3] - b[:, 1], 0.0)
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, 1e-12)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes greedy non-maximum suppression keeps (an overlap above ``iou``
    with a stronger kept box suppresses), strongest first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    overlaps = iou_matrix(xyxy, xyxy)
    keep: list[int] = []
    for i in order:
        if not keep or overlaps[i, keep].max() <= iou:
            keep.append(int(i))
    return np.asarray(keep, np.int64)


def clip_to_image(xyxy: np.ndarray, width: float, height: float) -> np.ndarray:
    """Clip xyxy boxes to the image rectangle [0, width] x [0, height]."""
    b = np.array(xyxy, dtype=np.float64 if np.asarray(xyxy).dtype == np.float64 else np.float32)
    b[..., 0::2] = np.clip(b[..., 0::2], 0, width)
    b[..., 1::2] = np.clip(b[..., 1::2], 0, height)
    return b
