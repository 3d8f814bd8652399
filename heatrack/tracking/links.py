"""Tracklets from the detector's own displacement predictions: time inside the network.

A detector with the displacement head gives every detection in frame t a vector to the same
person's centre in frame t - 1. ``TrackletLinker`` follows those vectors: the predicted
previous centre of each detection is matched (Hungarian, :func:`match_pairs`) to the centres
of the previous frame's detections, within a gate proportional to the person's height. A
detection left unmatched may continue a tracklet that skipped frames (a missed detection):
its vector, scaled by the gap under constant velocity, is matched to the tracklets that ended
``gap`` frames before, up to ``max_gap``. People do not turn round from one frame to the next:
a link must also keep the tracklet's velocity (the previous frame's displacement) within
``velocity_gate``; in a crossing, where a hidden person's vector points at the person in
front, who walks the other way, this refuses the swap.

Streaming, every frame's maps are averaged over all the T-frame windows that contain it, so a
frame pair (t - 1, t) has one displacement map, predicted by the T - 1 windows that hold both.
Linking consecutive frames with it is linking inside each window; since consecutive windows
share T - 1 frames, their tracklets chain through the shared frames into tracklets of any
length, and the linker only ever looks back ``max_gap`` frames. The tracker takes the
tracklet ids as a strong association cue (:class:`~heatrack.tracking.tracker.TrackerConfig`
``link_weight``).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from heatrack.tracking.matching import match_pairs
from heatrack.types import Detections


@dataclass(frozen=True)
class LinkConfig:
    #: A predicted previous centre links to a detection within this many box heights of it.
    gate: float = 0.35
    #: Frames a tracklet may skip (missed detections) and still be continued.
    max_gap: int = 2
    #: A link may change the tracklet's velocity by at most this many box heights per frame.
    velocity_gate: float = 0.25
    #: A link is made only if no rival (another candidate for the same detection, or another
    #: detection for the same candidate, by distance) comes within this margin of its cost
    #: (gate units); an ambiguous detection starts a new tracklet and the tracker decides.
    #: 0.8: the best of 0.5, 0.8 and 1.0 on the synthetic occlusion stress test.
    ambiguity: float = 0.8


class TrackletLinker:
    """Assigns tracklet ids frame by frame; ``update`` once per frame, in order."""

    def __init__(self, config: LinkConfig = LinkConfig()) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._next = 0
        # (frame index, centres (N, 2), tracklet ids (N,), continued (N,) bool,
        #  velocity (N, 2) pixels per frame, velocity known (N,) bool), newest last
        self._history: deque = deque(maxlen=self.config.max_gap + 1)

    def update(self, detections: Detections, frame_index: int) -> np.ndarray:
        """(N,) int64 tracklet ids for ``detections`` (which need ``displacement``): a
        continued tracklet's id, or a new one."""
        n = len(detections)
        centres = detections.centers.astype(np.float64)
        ids = np.full(n, -1, np.int64)
        step = np.zeros((n, 2))
        if detections.displacement is not None:
            step = detections.displacement.astype(np.float64)
        if detections.displacement is not None and n:
            heights = np.maximum(detections.xyxy[:, 3] - detections.xyxy[:, 1], 1.0)
            for frame, prev_centres, prev_ids, continued, prev_v, known in reversed(self._history):
                gap = frame_index - frame
                if gap > self.config.max_gap + 1:
                    break
                open_rows = np.flatnonzero(ids < 0)
                # Tracklets ending here: in the last frame all of them, earlier ones only if
                # nobody continued them since.
                candidates = np.flatnonzero(~continued) if gap > 1 else np.arange(len(prev_ids))
                if not len(open_rows) or not len(candidates):
                    continue
                predicted = centres[open_rows] + gap * step[open_rows]
                dist = np.linalg.norm(
                    predicted[:, None, :] - prev_centres[None, candidates, :], axis=2
                )
                near = dist / (self.config.gate * heights[open_rows, None])
                turn = np.linalg.norm(
                    -step[open_rows, None, :] - prev_v[None, candidates, :], axis=2
                ) / (self.config.velocity_gate * heights[open_rows, None])
                turn[:, ~known[candidates]] = 0.0  # a tracklet's first box has no velocity yet
                cost = np.where(turn < 1.0, near + turn, np.inf)
                rows, cols = match_pairs(cost, 1.0)
                rows, cols = self._unambiguous(cost, near, rows, cols)
                ids[open_rows[rows]] = prev_ids[candidates[cols]]
                continued[candidates[cols]] = True
        fresh = ids < 0
        ids[fresh] = np.arange(self._next, self._next + int(fresh.sum()))
        self._next += int(fresh.sum())
        velocity = np.zeros((n, 2)) if detections.displacement is None else -step
        self._history.append(
            (frame_index, centres, ids.copy(), np.zeros(n, bool), velocity, ~fresh)
        )
        return ids

    def _unambiguous(self, cost, near, rows, cols):
        """The matched pairs (by ``cost``) that no rival comes close to. Rivals are the other
        feasible pairs, and also, by distance alone (``near``), a detection whose nearest
        candidate is this one, or a candidate whose nearest detection is this one: when two
        people who were one detection part, both point back to it; the velocity gate may
        rule one out, but which of them continues that detection's tracklet is then a
        guess, and a wrong guess swaps them."""
        if not len(rows):
            return rows, cols
        chosen = cost[rows, cols]
        rows_nearest = near.argmin(axis=1)[:, None] == np.arange(near.shape[1])[None, :]
        cols_nearest = near.argmin(axis=0)[None, :] == np.arange(near.shape[0])[:, None]
        for_col = np.minimum(cost, np.where(rows_nearest, near, np.inf))
        for_row = np.minimum(cost, np.where(cols_nearest, near, np.inf))
        masked_rows = for_row[rows].copy()
        masked_rows[np.arange(len(rows)), cols] = np.inf
        masked_cols = for_col[:, cols].copy()
        masked_cols[rows, np.arange(len(cols))] = np.inf
        rival = np.minimum(masked_rows.min(axis=1), masked_cols.min(axis=0))
        clear = rival >= chosen + self.config.ambiguity
        return rows[clear], cols[clear]


def link_window(frames: list[Detections], config: LinkConfig = LinkConfig()) -> list[np.ndarray]:
    """Tracklet ids for the detections of one window's consecutive frames (each with its
    ``displacement``): the same detection in two frames' lists shares an id."""
    linker = TrackletLinker(config)
    return [linker.update(dets, k) for k, dets in enumerate(frames)]


def relink(
    frames: Iterable[tuple[int, Detections]], config: LinkConfig = LinkConfig(), blind: bool = False
) -> Iterator[tuple[int, Detections]]:
    """The detections again, with tracklet ids from a fresh linker. ``blind`` hides their
    displacement from it: nearest-centre links, the baseline a displacement head must beat."""
    linker = TrackletLinker(config)
    for index, dets in frames:
        seen = dets
        if blind or dets.displacement is None:
            seen = dataclasses.replace(dets, displacement=np.zeros((len(dets), 2)))
        yield index, dataclasses.replace(dets, tracklets=linker.update(seen, index))
