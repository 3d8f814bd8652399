"""Cost matrices between tracks and detections, and their assignment.

Costs are in [0, 1], lower is better; an entry at or above the stage's threshold can never be
matched. The tracker builds every association stage from these few functions.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from heatrack.boxes import iou_matrix

#: Stands in for "impossible" in a cost matrix; larger than any threshold.
INFEASIBLE = 1e6


def iou_cost(
    track_xyxy: np.ndarray, det_xyxy: np.ndarray, det_scores: np.ndarray | None = None
) -> np.ndarray:
    """1 - IoU; with ``det_scores`` the IoU is first multiplied by the score (ByteTrack's fusion),
    so that among overlapping boxes a confident detection is preferred."""
    sim = iou_matrix(track_xyxy, det_xyxy)
    if det_scores is not None:
        sim = sim * np.asarray(det_scores, np.float64)[None, :]
    return 1.0 - sim


def appearance_cost(track_emb: np.ndarray, det_emb: np.ndarray) -> np.ndarray:
    """Cosine distance of unit vectors, halved into [0, 1]: 0 same direction, 1 opposite."""
    if len(track_emb) == 0 or len(det_emb) == 0:
        return np.ones((len(track_emb), len(det_emb)))
    return np.clip((1.0 - track_emb @ det_emb.T) / 2.0, 0.0, 1.0)


def fuse_appearance(
    motion: np.ndarray, appearance: np.ndarray, appearance_gate: float, proximity_gate: float
) -> np.ndarray:
    """Min of motion and appearance cost, where appearance counts only when it is both close
    enough (< ``appearance_gate``) and supported by overlap (motion cost < ``proximity_gate``).

    Gating keeps a look-alike far away from stealing an identity, while a confident
    appearance match may rescue a poor IoU after erratic motion.
    """
    app = appearance.copy()
    app[(appearance >= appearance_gate) | (motion >= proximity_gate)] = 1.0
    return np.minimum(motion, app)


def assign(cost: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment (Hungarian) keeping only pairs with cost < threshold.

    Returns ``matches`` (K, 2) of (row, column), and the unmatched rows and columns.
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.zeros((0, 2), np.int64), np.arange(n), np.arange(m)
    gated = np.where(cost < threshold, cost, INFEASIBLE)
    rows, cols = linear_sum_assignment(gated)
    keep = gated[rows, cols] < threshold
    matches = np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64)
    un_rows = np.setdiff1d(np.arange(n), matches[:, 0], assume_unique=True)
    un_cols = np.setdiff1d(np.arange(m), matches[:, 1], assume_unique=True)
    return matches, un_rows, un_cols
