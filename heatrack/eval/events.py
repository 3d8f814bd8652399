"""Where identity errors happen: ID switches and fragmentations, frame by frame.

A CLEAR-MOT style pass over the frames: each ground-truth pedestrian keeps its tracker match
from the previous frame while their IoU stays >= 0.5; the rest are assigned by the one matcher
(Hungarian, IoU >= 0.5). A switch is a pedestrian matched to a different track than the last
time it was matched; a fragmentation is a pedestrian matched again after frames without a
match. The counts follow the same rules as TrackEval's CLEAR metrics, without its distractor
preprocessing, so they can differ slightly; they are meant to show *where*, not to score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heatrack.boxes import iou_matrix
from heatrack.io.mot import MotRows
from heatrack.tracking.matching import match_pairs

MATCH_IOU = 0.5


@dataclass(frozen=True)
class IdentityEvent:
    frame: int
    kind: str  # "switch" or "fragmentation"
    gt_id: int
    track_id: int
    previous_track_id: int


def identity_events(gt: MotRows, results: MotRows) -> list[IdentityEvent]:
    gt = gt[gt.pedestrian_mask()]
    gt_frames = dict(gt.by_frame())
    res_frames = dict(results.by_frame())
    last_match: dict[int, int] = {}  # gt id -> track id it was last matched to
    matched_prev: dict[int, int] = {}  # gt id -> track id matched in the previous frame
    events = []
    for frame in sorted(set(gt_frames) | set(res_frames)):
        g = gt_frames.get(frame)
        if g is None:
            matched_prev = {}
            continue
        r = res_frames.get(frame)
        pairs: dict[int, int] = {}
        if r is not None and len(r):
            iou = iou_matrix(g.xyxy, r.xyxy)
            # Keep last frame's correspondences that still overlap enough.
            cost = 1.0 - iou
            for gi, gid in enumerate(g.ids):
                tid = matched_prev.get(int(gid))
                if tid is None:
                    continue
                cols = np.flatnonzero(r.ids == tid)
                if len(cols) and iou[gi, cols[0]] >= MATCH_IOU:
                    cost[gi, :] = 1.0 + 1e-6  # taken: out of the assignment
                    cost[gi, cols[0]] = -1.0
            rows, cols = match_pairs(cost, 1.0 - MATCH_IOU)
            pairs = {int(g.ids[a]): int(r.ids[b]) for a, b in zip(rows, cols, strict=True)}
        for gid, tid in pairs.items():
            previous = last_match.get(gid)
            if previous is not None and previous != tid:
                events.append(IdentityEvent(frame, "switch", gid, tid, previous))
            if previous is not None and gid not in matched_prev:
                events.append(IdentityEvent(frame, "fragmentation", gid, tid, previous))
            last_match[gid] = tid
        matched_prev = pairs
    return events
