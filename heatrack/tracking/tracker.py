"""The Tracker: per-frame Detections (optionally with embeddings) in, Tracks with stable ids out.

One frame of ``update``:

1. Clean the detections (see :meth:`Tracker.update`) and predict every track one frame ahead
   with the Kalman filter, after optional camera-motion compensation.
2. Stage 1: confirmed and lost tracks against confident detections (score >= ``high_score``),
   cost 1 - IoU (score-weighted), fused with appearance when embeddings are present.
3. Stage 2 (BYTE): confirmed tracks still unmatched against the low-score detections, IoU only.
   Occluded people often get low scores; matching them keeps the track alive without letting
   low-score clutter start new tracks.
4. Stage 3: tentative tracks against the confident detections left.
5. Stage 4 (re-identification): tracks lost for longer, which IoU can no longer reach, against
   the confident detections left, by appearance alone within a motion-plausible distance.
6. Lifecycle: a track is tentative until ``min_hits`` consecutive matches, confirmed while
   matched, lost when missed, and removed after ``max_lost_seconds`` (``reid_max_lost_seconds``
   with embeddings). Unmatched confident detections start tentative tracks.

A track matched again after a gap is re-updated along a straight line between its last and
new observation (OC-SORT's observation-centric re-update), so velocity learnt from pure
prediction during the occlusion does not survive the gap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from heatrack.boxes import clip_to_image, cxcywh_to_xyxy, xyxy_to_cxcywh
from heatrack.tracking.kalman import KalmanFilter
from heatrack.tracking.matching import (
    appearance_cost,
    assign,
    fuse_appearance,
    iou_cost,
)
from heatrack.types import Detections, Tracks

log = logging.getLogger(__name__)

TENTATIVE, CONFIRMED, LOST = 0, 1, 2


@dataclass(frozen=True)
class TrackerConfig:
    """Every threshold the tracker uses. Scores are detection confidences; costs are in [0, 1]."""

    #: Detections at or above this score take part in stage 1 and may start tracks.
    high_score: float = 0.5
    #: Detections below this score are dropped; between it and ``high_score`` they only
    #: extend confirmed tracks (stage 2).
    low_score: float = 0.1
    #: An unmatched detection starts a track only at or above this score.
    new_track_score: float = 0.6
    #: Stage-1 cost threshold: 1 - score * IoU must be below it (0.8 means IoU*score > 0.2).
    match_cost: float = 0.8
    #: Stage-2 threshold, IoU only (0.5 means IoU > 0.5).
    low_match_cost: float = 0.5
    #: Stage-3 threshold for tentative tracks.
    tentative_match_cost: float = 0.7
    #: Weight the IoU by the detection score in stages 1 and 3 (ByteTrack's score fusion).
    fuse_score: bool = True
    #: Consecutive matches before a track is confirmed and reported. Tracks born in the
    #: first frame are confirmed at once.
    min_hits: int = 2
    #: Seconds a lost track is kept for IoU re-association before it is removed.
    max_lost_seconds: float = 1.0
    #: Seconds a lost track is kept for appearance re-identification (embeddings only).
    reid_max_lost_seconds: float = 10.0
    #: Appearance cost (halved cosine distance) below which appearance may replace IoU in
    #: stage 1; above it appearance is ignored.
    appearance_gate: float = 0.25
    #: Appearance only counts where the IoU cost is below this (the pair overlaps somewhat).
    proximity_gate: float = 0.5
    #: Stage-4 re-identification threshold on appearance cost alone.
    reid_cost: float = 0.15
    #: Stage-4 motion gate: the new centre must lie within this many box heights of the last
    #: observed centre, times the square root of the gap in seconds (plus one).
    reid_max_distance: float = 2.0
    #: Momentum of a track's appearance: emb = m * emb + (1 - m) * new, then renormalised.
    embedding_momentum: float = 0.9
    #: Boxes smaller than this width or height (pixels) after clipping are dropped.
    min_box_size: float = 2.0
    #: Report the Kalman-corrected box (True) or the matched detection's own box (False).
    output_kalman_box: bool = False
    #: Estimate camera motion from frames and move tracks with it (needs ``frame``).
    camera_motion: bool = False


_FIELDS = (
    "ids",
    "status",
    "hits",
    "misses",
    "last_frame",
    "last_box",
    "mean",
    "cov",
    "obs_mean",
    "obs_cov",
    "emb",
    "score",
)


class Tracker:
    """Online multi-object tracker: ``update`` once per frame, in order; ``reset`` per video."""

    def __init__(self, config: TrackerConfig | None = None, frame_rate: float = 30.0) -> None:
        self.config = config or TrackerConfig()
        self.frame_rate = float(frame_rate)
        self.kalman = KalmanFilter()
        self.camera = None
        if self.config.camera_motion:
            from heatrack.tracking.motion import CameraMotion

            self.camera = CameraMotion()
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart ids at 1."""
        self._t = {
            "ids": np.zeros(0, np.int64),
            "status": np.zeros(0, np.int8),
            "hits": np.zeros(0, np.int64),
            "misses": np.zeros(0, np.int64),
            "last_frame": np.zeros(0, np.int64),
            "last_box": np.zeros((0, 4)),
            "mean": np.zeros((0, 8)),
            "cov": np.zeros((0, 8, 8)),
            "obs_mean": np.zeros((0, 8)),
            "obs_cov": np.zeros((0, 8, 8)),
            "emb": None,
            "score": np.zeros(0),
        }
        self._next_id = 1
        self._frame = self._previous_frame = 0
        self._emb_dim: int | None = None
        if self.camera is not None:
            self.camera.reset()

    @property
    def frame_index(self) -> int:
        """Index of the last frame seen (0 before the first)."""
        return self._frame

    def update(
        self,
        detections: Detections,
        frame: np.ndarray | None = None,
        frame_index: int | None = None,
    ) -> Tracks:
        """Advance one frame and return the confirmed tracks matched in it.

        ``frame_index`` (1-based) defaults to the next frame; a skipped index (a frame that
        could not be decoded) predicts over the gap, and an index not after the previous one
        raises ``ValueError``. Detections are cleaned first: rows with a NaN or infinite box
        or score, or with right < left or bottom < top, are dropped (logged); with a
        ``frame``, boxes are clipped to the image and those left smaller than
        ``min_box_size`` are dropped.
        """
        cfg = self.config
        if frame_index is None:
            frame_index = self._frame + 1
        if frame_index <= self._frame:
            raise ValueError(
                f"frame {frame_index} arrives after frame {self._frame}: "
                "frames must be given in increasing order (call reset() for a new video)"
            )
        steps = frame_index - self._frame
        self._previous_frame, self._frame = self._frame, frame_index
        dets, kept = self._clean(detections, frame)
        if dets.embeddings is not None:
            self._check_embeddings(dets.embeddings)

        t = self._t
        if self.camera is not None and frame is not None:
            affine = self.camera.estimate(frame)
            if affine is not None:
                t["mean"], t["cov"] = self.kalman.warp(t["mean"], t["cov"], affine)
                t["last_box"] = _warp_boxes(t["last_box"], affine)
        lost = t["status"] == LOST
        t["mean"][lost, 6:8] = 0.0  # no size change while nobody sees the person
        for _ in range(steps):
            t["mean"], t["cov"] = self.kalman.predict(t["mean"], t["cov"])
        t["misses"] += steps

        pred_xyxy = cxcywh_to_xyxy(t["mean"][:, :4])
        high = np.flatnonzero(dets.scores >= cfg.high_score)
        low = np.flatnonzero(dets.scores < cfg.high_score)
        det_xyxy = dets.xyxy.astype(np.float64)
        status = t["status"]
        track_match = np.full(len(status), -1)  # det row matched to each track

        # Stage 1: confirmed and recently lost tracks vs confident detections.
        pool = np.flatnonzero((status != TENTATIVE) & (t["misses"] <= self._max_lost_frames))
        cost = iou_cost(
            pred_xyxy[pool], det_xyxy[high], dets.scores[high] if cfg.fuse_score else None
        )
        if dets.embeddings is not None and t["emb"] is not None:
            app = appearance_cost(t["emb"][pool], dets.embeddings[high])
            cost = fuse_appearance(cost, app, cfg.appearance_gate, cfg.proximity_gate)
        matches, _, free_high = assign(cost, cfg.match_cost)
        track_match[pool[matches[:, 0]]] = high[matches[:, 1]]
        high = high[free_high]

        # Stage 2: confirmed tracks that were seen last frame vs low-score detections.
        pool = np.flatnonzero((track_match < 0) & (status == CONFIRMED))
        matches, _, _ = assign(iou_cost(pred_xyxy[pool], det_xyxy[low]), cfg.low_match_cost)
        track_match[pool[matches[:, 0]]] = low[matches[:, 1]]

        # Stage 3: tentative tracks vs confident detections left.
        pool = np.flatnonzero(status == TENTATIVE)
        cost = iou_cost(
            pred_xyxy[pool], det_xyxy[high], dets.scores[high] if cfg.fuse_score else None
        )
        matches, _, free_high = assign(cost, cfg.tentative_match_cost)
        track_match[pool[matches[:, 0]]] = high[matches[:, 1]]
        high = high[free_high]

        # Stage 4: re-identify long-lost tracks by appearance.
        if dets.embeddings is not None and t["emb"] is not None and len(high):
            pool = np.flatnonzero((track_match < 0) & (status == LOST))
            cost = appearance_cost(t["emb"][pool], dets.embeddings[high])
            cost[~self._reid_reachable(pool, det_xyxy[high])] = 1.0
            matches, _, free_high = assign(cost, cfg.reid_cost)
            track_match[pool[matches[:, 0]]] = high[matches[:, 1]]
            high = high[free_high]

        self._apply_matches(track_match, dets)
        alive = self._age_unmatched(track_match >= 0)
        self._keep(alive)
        births = high[dets.scores[high] >= cfg.new_track_score]
        self._start_tracks(dets[births])
        return self._report(np.concatenate([track_match[alive], births]), dets, kept)

    # --- steps of update -------------------------------------------------------------

    @property
    def _max_lost_frames(self) -> int:
        return max(1, round(self.config.max_lost_seconds * self.frame_rate))

    @property
    def _reid_max_lost_frames(self) -> int:
        return max(
            self._max_lost_frames, round(self.config.reid_max_lost_seconds * self.frame_rate)
        )

    def _clean(self, dets: Detections, frame: np.ndarray | None) -> tuple[Detections, np.ndarray]:
        """Drop invalid rows; clip to the image when its size is known. Returns kept row indices."""
        xyxy, scores = dets.xyxy, dets.scores
        ok = np.isfinite(xyxy).all(axis=1) & np.isfinite(scores)
        ok &= (xyxy[:, 2] >= xyxy[:, 0]) & (xyxy[:, 3] >= xyxy[:, 1])
        if not ok.all():
            log.warning(
                "frame %d: dropped %d detections with NaN/inf or inverted boxes",
                self._frame,
                int((~ok).sum()),
            )
        ok &= scores >= self.config.low_score
        kept = np.flatnonzero(ok)
        dets = dets[kept]
        if frame is not None and len(dets):
            clipped = clip_to_image(dets.xyxy, frame.shape[1], frame.shape[0])
            dets = Detections(xyxy=clipped, scores=dets.scores, embeddings=dets.embeddings)
        wh = dets.xyxy[:, 2:] - dets.xyxy[:, :2]
        big = (wh >= self.config.min_box_size).all(axis=1)
        return dets[big], kept[big]

    def _check_embeddings(self, emb: np.ndarray) -> None:
        if self._emb_dim is None:
            self._emb_dim = emb.shape[1]
        elif emb.shape[1] != self._emb_dim:
            raise ValueError(
                f"frame {self._frame}: embeddings have {emb.shape[1]} dimensions, "
                f"earlier frames had {self._emb_dim}"
            )

    def _reid_reachable(self, pool: np.ndarray, det_xyxy: np.ndarray) -> np.ndarray:
        """(len(pool), D) mask: lost track could have walked to the detection in its gap."""
        t = self._t
        gap_s = (self._frame - t["last_frame"][pool]) / self.frame_rate
        last = t["last_box"][pool]
        centers = (det_xyxy[:, :2] + det_xyxy[:, 2:]) / 2
        dist = np.linalg.norm(last[:, None, :2] - centers[None, :, :], axis=2)
        reach = self.config.reid_max_distance * last[:, 3] * (1 + np.sqrt(gap_s))
        recent = t["misses"][pool] <= self._reid_max_lost_frames
        return (dist <= reach[:, None]) & recent[:, None]

    def _apply_matches(self, track_match: np.ndarray, dets: Detections) -> None:
        t, cfg = self._t, self.config
        rows = np.flatnonzero(track_match >= 0)
        if len(rows) == 0:
            return
        d = track_match[rows]
        boxes = xyxy_to_cxcywh(dets.xyxy[d].astype(np.float64))
        gap = self._frame - t["last_frame"][rows]
        direct = gap <= 1
        r = rows[direct]
        t["mean"][r], t["cov"][r] = self.kalman.update(t["mean"][r], t["cov"][r], boxes[direct])
        for i, box in zip(rows[~direct], boxes[~direct], strict=False):
            t["mean"][i], t["cov"][i] = self._reupdate(i, box)
        t["obs_mean"][rows], t["obs_cov"][rows] = t["mean"][rows], t["cov"][rows]
        t["last_box"][rows] = boxes
        t["last_frame"][rows] = self._frame
        t["score"][rows] = dets.scores[d]
        consecutive = t["misses"][rows] == self._frame - self._previous_frame
        t["hits"][rows] = np.where(consecutive, t["hits"][rows], 0) + 1
        t["misses"][rows] = 0
        confirm = (t["status"][rows] != CONFIRMED) & (
            (t["status"][rows] == LOST) | (t["hits"][rows] >= cfg.min_hits)
        )
        t["status"][rows[confirm]] = CONFIRMED
        fresh = rows[confirm & (t["ids"][rows] == 0)]
        t["ids"][fresh] = np.arange(self._next_id, self._next_id + len(fresh))
        self._next_id += len(fresh)
        if dets.embeddings is not None:
            self._update_embeddings(rows, dets.embeddings[d], dets.scores[d])

    def _reupdate(self, i: int, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Replay a gap from the last observation along a straight line to ``box``."""
        t = self._t
        gap = int(self._frame - t["last_frame"][i])
        mean, cov = t["obs_mean"][i : i + 1].copy(), t["obs_cov"][i : i + 1].copy()
        start = t["last_box"][i]
        for step in range(1, gap + 1):
            mean, cov = self.kalman.predict(mean, cov)
            virtual = start + (box - start) * (step / gap)
            mean, cov = self.kalman.update(mean, cov, virtual[None])
        return mean[0], cov[0]

    def _update_embeddings(self, rows: np.ndarray, emb: np.ndarray, scores: np.ndarray) -> None:
        t = self._t
        if t["emb"] is None:
            t["emb"] = np.zeros((len(t["ids"]), emb.shape[1]))
        m = self.config.embedding_momentum
        old = t["emb"][rows]
        has_old = np.linalg.norm(old, axis=1) > 0
        # Confident detections teach appearance; occluded, low-score ones would blur it.
        teach = scores >= self.config.high_score
        new = np.where(has_old[:, None], m * old + (1 - m) * emb, emb)
        new /= np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-12)
        t["emb"][rows] = np.where((teach | ~has_old)[:, None], new, old)

    def _age_unmatched(self, matched: np.ndarray) -> np.ndarray:
        """Confirmed tracks missed now become lost; returns the mask of tracks that live on."""
        t = self._t
        unmatched = ~matched
        t["status"][unmatched & (t["status"] == CONFIRMED)] = LOST
        limit = self._reid_max_lost_frames if t["emb"] is not None else self._max_lost_frames
        return ~((unmatched & (t["status"] == TENTATIVE)) | (t["misses"] > limit))

    def _keep(self, rows: np.ndarray) -> None:
        for k in _FIELDS:
            if self._t[k] is not None:
                self._t[k] = self._t[k][rows]

    def _start_tracks(self, dets: Detections) -> None:
        t = self._t
        n = len(dets)
        boxes = xyxy_to_cxcywh(dets.xyxy.astype(np.float64))
        mean, cov = self.kalman.initiate(boxes)
        first = self._frame == 1
        ids = np.zeros(n, np.int64)
        if first:
            ids = np.arange(self._next_id, self._next_id + n)
            self._next_id += n
        new = {
            "ids": ids,
            "status": np.full(n, CONFIRMED if first else TENTATIVE, np.int8),
            "hits": np.ones(n, np.int64),
            "misses": np.zeros(n, np.int64),
            "last_frame": np.full(n, self._frame, np.int64),
            "last_box": boxes,
            "mean": mean,
            "cov": cov,
            "obs_mean": mean.copy(),
            "obs_cov": cov.copy(),
            "score": dets.scores.astype(np.float64),
        }
        for k, v in new.items():
            t[k] = np.concatenate([t[k], v])
        if dets.embeddings is not None or t["emb"] is not None:
            dim = dets.embeddings.shape[1] if dets.embeddings is not None else t["emb"].shape[1]
            old = t["emb"] if t["emb"] is not None else np.zeros((len(t["ids"]) - n, dim))
            fresh = dets.embeddings if dets.embeddings is not None else np.zeros((n, dim))
            t["emb"] = np.concatenate([old, fresh.astype(np.float64)])

    def _report(self, track_match: np.ndarray, dets: Detections, kept: np.ndarray) -> Tracks:
        t = self._t
        show = (t["status"] == CONFIRMED) & (t["misses"] == 0)
        d = track_match[show]
        if self.config.output_kalman_box:
            xyxy = cxcywh_to_xyxy(t["mean"][show, :4])
        else:
            xyxy = dets.xyxy[d]
        return Tracks(
            xyxy=xyxy,
            scores=t["score"][show],
            embeddings=None if dets.embeddings is None else dets.embeddings[d],
            ids=t["ids"][show],
            det_index=kept[d],
        )


def _warp_boxes(cxcywh: np.ndarray, affine: np.ndarray) -> np.ndarray:
    out = cxcywh.copy()
    out[:, :2] = cxcywh[:, :2] @ affine[:, :2].T + affine[:, 2]
    return out
