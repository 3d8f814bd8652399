"""Cost matrices between tracks and detections, and their assignment.

Costs are in [0, 1], lower is better; an entry at or above the stage's threshold can never be
matched. The tracker builds every association stage from these few functions.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from heatrack.boxes import iou_matrix


def iou_cost(
    track_xyxy: np.ndarray, det_xyxy: np.ndarray, det_scores: np.ndarray | None = None
) -> np.ndarray:
    """1 - IoU; with ``det_scores`` the IoU is first multiplied by the score (ByteTrack's fusion),
    so that among overlapping boxes a confident detection is preferred."""
    sim = iou_matrix(track_xyxy, det_xyxy)
    if det_scores is not None:
        sim = sim * np.asarray(det_scores, np.float64)[None, :]
    return 1.0 - sim


def diou_cost(
    track_xyxy: np.ndarray, det_xyxy: np.ndarray, det_scores: np.ndarray | None = None
) -> np.ndarray:
    """1 - IoU + d^2 / c^2 (Distance-IoU), clipped to [0, 1]: d is the distance between box
    centres and c the diagonal of their enclosing box, so boxes that no longer overlap
    (fast motion, low frame rate) still rank by how far apart they are."""
    a = np.asarray(track_xyxy, np.float64).reshape(-1, 4)
    b = np.asarray(det_xyxy, np.float64).reshape(-1, 4)
    sim = iou_matrix(a, b)
    if det_scores is not None:
        sim = sim * np.asarray(det_scores, np.float64)[None, :]
    ca = (a[:, :2] + a[:, 2:]) / 2
    cb = (b[:, :2] + b[:, 2:]) / 2
    d2 = ((ca[:, None, :] - cb[None, :, :]) ** 2).sum(axis=2)
    lt = np.minimum(a[:, None, :2], b[None, :, :2])
    rb = np.maximum(a[:, None, 2:], b[None, :, 2:])
    c2 = ((rb - lt) ** 2).sum(axis=2)
    return np.clip(1.0 - sim + d2 / np.maximum(c2, 1e-12), 0.0, 1.0)


def appearance_cost(track_emb: np.ndarray, det_emb: np.ndarray) -> np.ndarray:
    """Cosine distance of unit vectors, halved into [0, 1]: 0 same direction, 1 opposite."""
    if len(track_emb) == 0 or len(det_emb) == 0:
        return np.ones((len(track_emb), len(det_emb)))
    return np.clip((1.0 - track_emb @ det_emb.T) / 2.0, 0.0, 1.0)


def fuse_appearance(
    motion: np.ndarray,
    appearance: np.ndarray,
    appearance_gate: float,
    proximity_gate: float,
    clear_margin: float = 0.0,
    cost: np.ndarray | None = None,
) -> np.ndarray:
    """Min of motion and appearance cost, where appearance counts only when it is both close
    enough (< ``appearance_gate``) and supported by overlap (motion cost < ``proximity_gate``).

    Gating keeps a look-alike far away from stealing an identity, while a confident
    appearance match may rescue a poor IoU after erratic motion. With ``clear_margin`` > 0,
    a pair that motion alone already decides (its cost beats every other in its row and its
    column by the margin) is left to motion: appearance may not pull that track or that
    detection elsewhere; it only speaks where overlap is ambiguous.

    ``cost``: what appearance competes with when it is not ``motion`` itself (motion with the
    detector's links applied). The gates still read plain ``motion``, so a link's push cannot
    silence a confident appearance match, nor its pull open the gate to a far look-alike.
    """
    app = appearance.copy()
    app[(appearance >= appearance_gate) | (motion >= proximity_gate)] = 1.0
    if clear_margin > 0 and motion.size:
        rows, cols = decisive(motion, clear_margin).nonzero()
        clear = motion[rows, cols] < proximity_gate
        app[rows[clear]] = 1.0
        app[:, cols[clear]] = 1.0
    return np.minimum(motion if cost is None else cost, app)


def decisive(cost: np.ndarray, margin: float) -> np.ndarray:
    """Mask of the entries that beat every other entry in their row and in their column by
    at least ``margin``: pairs no rival comes close to (at most one per row and column)."""
    if cost.size == 0:
        return np.zeros(cost.shape, bool)
    rows = np.arange(len(cost))
    best = cost.argmin(axis=1)
    best_cost = cost[rows, best]
    others = cost.copy()
    others[rows, best] = np.inf
    row_gap = others.min(axis=1) - best_cost
    column = cost[:, best]  # column of each row's best entry, every row
    column[rows, rows] = np.inf  # but the row itself
    col_gap = column.min(axis=0) - best_cost
    mask = np.zeros(cost.shape, bool)
    keep = (row_gap >= margin) & (col_gap >= margin)
    mask[rows[keep], best[keep]] = True
    return mask


def match_pairs(cost: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the minimum-cost one-to-one assignment where leaving a row or a
    column unmatched costs ``threshold / 2``: a pair is matched only if its cost is below
    ``threshold``, and one good match is preferred to two poor ones (lapjv's ``cost_limit``).

    It equals an assignment on ``min(cost - threshold, 0)``: a pair gains only what it beats
    the threshold by.
    """
    feasible = cost < threshold
    per_row = feasible.sum(axis=1)
    if per_row.max(initial=0) <= 1 and feasible.sum(axis=0).max(initial=0) <= 1:
        # No row or column has a choice to make (the usual case in sparse scenes).
        return feasible.nonzero()
    rows, cols = linear_sum_assignment(np.minimum(cost - threshold, 0.0))
    keep = feasible[rows, cols]
    return rows[keep], cols[keep]


def assign(cost: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`match_pairs` as ``matches`` (K, 2) of (row, column), plus the unmatched rows and
    columns."""
    n, m = cost.shape
    rows, cols = match_pairs(cost, threshold)
    free_rows = np.ones(n, bool)
    free_rows[rows] = False
    free_cols = np.ones(m, bool)
    free_cols[cols] = False
    return np.stack([rows, cols], axis=1), free_rows.nonzero()[0], free_cols.nonzero()[0]
