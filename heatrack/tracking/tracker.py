"""The Tracker: per-frame Detections (optionally with embeddings) in, Tracks with stable ids out.

One frame of ``update``:

1. Clean the detections (see :meth:`Tracker.update`) and predict every track one frame ahead
   with the Kalman filter, after optional camera-motion compensation.
2. Stage 1: confirmed and recently lost tracks against confident detections
   (score >= ``high_score``), cost 1 - IoU (score-weighted), fused with appearance when
   embeddings are present; a pair that looks too different (``appearance_veto``) is refused
   unless it overlaps near perfectly (``appearance_veto_min_cost``).
3. Stage 2 (BYTE): confirmed tracks still unmatched against the low-score detections, IoU only.
   Occluded people often get low scores; matching them keeps the track alive without letting
   low-score clutter start new tracks.
4. Stage 3 (observation-centric recovery): tracks still unmatched, by IoU between their *last
   observed* box and the confident detections left. After a short miss the Kalman prediction
   may have drifted; where the person was last seen is often the better guess.
5. Stage 4: tentative tracks against the confident detections left.
6. Detector links: when the detections carry tracklet ids (a detector with the displacement
   head, :mod:`heatrack.tracking.links`), a track and the detection that continues its
   tracklet are pulled together in stages 1 and 2, and a detection that continues another
   track's tracklet is pushed away from this one (``link_weight``). In stage 4 the predicted
   displacement is the motion of tentative tracks, which have no velocity yet: a detection
   moved back by it is compared with where the track was. The links themselves do not
   confirm tracks there: they would bind clutter into tracks as readily as people. Motion, IoU
   and appearance still decide what a window cannot see: long occlusions, entries and exits.
7. Stage 5 (re-identification): tracks lost for longer, which IoU can no longer reach, against
   the confident detections left, by appearance alone within a motion-plausible distance,
   and only where no other candidate comes close (``reid_margin``).
8. Lifecycle: a track is tentative until ``min_hits`` consecutive matches, confirmed while
   matched, lost when missed, and removed after ``max_lost_seconds`` (``reid_max_lost_seconds``
   with embeddings). Unmatched confident detections start tentative tracks; with
   ``low_birth_score``, unmatched low-score ones do too, confirmed only after
   ``low_birth_hits`` consecutive matches.

A track matched again after a gap is re-updated along a straight line between its last and
new observation (OC-SORT's observation-centric re-update), so velocity learnt from pure
prediction during the occlusion does not survive the gap.

Per-track state lives in parallel arrays, one row per track; the hot path avoids per-object
Python work so that a frame costs tens of microseconds, not milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from heatrack.tracking.kalman import KalmanFilter
from heatrack.tracking.matching import (
    appearance_cost,
    decisive,
    diou_cost,
    fuse_appearance,
    iou_cost,
    match_pairs,
)
from heatrack.tracking.scores import ScoreScale
from heatrack.types import Detections, Tracks

log = logging.getLogger(__name__)

TENTATIVE, CONFIRMED, LOST = 0, 1, 2
#: Scores a lifting adaptation sees before it lifts (a few frames of a busy scene).
RAISE_MIN_SCORES = 30


@dataclass(frozen=True)
class TrackerConfig:
    """Every threshold the tracker uses. Scores are detection confidences; costs are in [0, 1]."""

    #: Detections at or above this score take part in stage 1 and may start tracks.
    high_score: float = 0.6
    #: Detections below this score are dropped; between it and ``high_score`` they only
    #: extend confirmed tracks (stage 2).
    low_score: float = 0.1
    #: An unmatched detection starts a track only at or above this score.
    new_track_score: float = 0.65
    #: Stage-1 cost threshold: 1 - score * IoU must be below it (0.7 means IoU*score > 0.3).
    match_cost: float = 0.7
    #: Stage-2 threshold, IoU only (0.3 means IoU > 0.7: low-score boxes must fit well).
    low_match_cost: float = 0.3
    #: Stage-3 threshold on 1 - IoU with the last observed box; 1.0 turns the stage off
    #: (off by default: it did not pay on the benchmarks, see BENCHMARKS.md).
    recovery_match_cost: float = 1.0
    #: Stage-4 threshold for tentative tracks.
    tentative_match_cost: float = 0.4
    #: The IoU thresholds above hold at ``gate_reference_fps``; at a lower frame rate people
    #: move further between frames, so the overlap a match needs, 1 - cost, is scaled by
    #: (fps / gate_reference_fps) ** ``gate_fps_power`` (0: the same at every frame rate).
    gate_fps_power: float = 1.0
    gate_reference_fps: float = 30.0
    #: The frame-rate scaling applies to the stage-2 and stage-4 gates too (else stage 1 only).
    gate_all_stages: bool = False
    #: Stage 1 uses Distance-IoU (1 - IoU + centre distance^2 / enclosing diagonal^2)
    #: instead of plain IoU.
    distance_iou: bool = False
    #: Weight the IoU by the detection score in stages 1 and 4 (ByteTrack's score fusion).
    fuse_score: bool = True
    #: Consecutive matches before a track is confirmed and reported, its birth counted (1:
    #: reported from its first detection). Tracks born in the first frame are confirmed at once.
    min_hits: int = 2
    #: Persistent low-score births: an unmatched detection scoring at least this but below
    #: ``new_track_score`` starts a tentative track that needs ``low_birth_hits`` consecutive
    #: matches (against detections from this score up) to be confirmed. Some detectors score
    #: a whole person low for their whole visit (occluded, or an offline tracker's
    #: interpolated boxes); clutter rarely persists that long (1: off).
    low_birth_score: float = 0.5
    low_birth_hits: int = 3
    #: ... and whose Kalman speed is then at least this many box heights per second: a sign
    #: or a lamp that a detector scores low stands still, a person seen low for so long
    #: mostly walks (0: no speed needed).
    low_birth_min_speed: float = 0.07
    #: Seconds a lost track is kept for IoU re-association before it is removed.
    max_lost_seconds: float = 2.0
    #: Observation-centric re-update: a track back after a gap replays it with at most this
    #: many virtual observations on the line from its last box to the new one.
    reupdate_points: int = 4
    #: Scale the Kalman measurement noise by (1 - score): trust confident boxes more.
    score_scaled_noise: bool = False
    #: Seconds a lost track is kept for appearance re-identification (embeddings only).
    reid_max_lost_seconds: float = 10.0
    #: Appearance cost (halved cosine distance) below which appearance may replace IoU in
    #: stage 1; above it appearance is ignored.
    appearance_gate: float = 0.25
    #: Appearance only counts where the IoU cost is below this (the pair overlaps somewhat).
    proximity_gate: float = 0.5
    #: A track and detection whose motion cost beats every rival in their row and column by
    #: this margin are left to motion: appearance only decides ambiguous overlaps (0: off).
    appearance_clear_margin: float = 0.1
    #: Stage 1 refuses a pair whose appearance cost is at or above this, where both the
    #: track and the detection have an appearance: after an occlusion the prediction often
    #: overlaps the wrong person of a crossing pair, and a look that far off says so (1: off).
    appearance_veto: float = 1.0
    #: The veto only applies where the stage-1 motion cost is at least this (1 - IoU, score
    #: weighted with ``fuse_score``): a near-perfect overlap is left to motion, since a
    #: partial or badly placed box can look unlike its own person (0: veto every pair).
    appearance_veto_min_cost: float = 0.35
    #: Stage-5 re-identification threshold on appearance cost alone.
    reid_cost: float = 0.15
    #: Stage 5 re-identifies only a pair whose appearance cost beats every other lost track
    #: for that detection, and every other detection for that track, by this margin: among
    #: look-alikes a fresh identity costs less than a wrong old one (0: off).
    reid_margin: float = 0.0
    #: Stage-5 motion gate: the new centre must lie within this many box heights of the last
    #: observed centre, times one plus the square root of the gap in seconds.
    reid_max_distance: float = 1.0
    #: Momentum of a track's appearance: emb = m * emb + (1 - m) * new, then renormalised.
    embedding_momentum: float = 0.9
    #: With lazy appearance (``update(..., embed=fn)``), a track's appearance is refreshed
    #: from its detection every this many frames; in between only detections whose match is
    #: ambiguous, or that could re-identify a lost track, are embedded.
    appearance_refresh_frames: int = 10
    #: Boxes smaller than this width or height (pixels) after clipping are dropped.
    min_box_size: float = 2.0
    #: Report the Kalman-corrected box (True) or the matched detection's own box (False).
    output_kalman_box: bool = True
    #: Keep reporting a confirmed track at its predicted box for up to this many frames
    #: after it was last matched (``det_index`` -1). Bridges detector flicker online.
    coast_frames: int = 2
    #: Only tracks whose last run of consecutive matches is at least this long coast.
    coast_min_run: int = 5
    #: Estimate camera motion from frames and move tracks with it (needs ``frame``).
    camera_motion: bool = False
    #: Pull of the detector's tracklet links (detections with ``tracklets``), in [0, 1]: the
    #: cost of a track and the detection continuing its tracklet is scaled by (1 - w), even
    #: where fast motion left no overlap (the network saw the person move); a detection
    #: continuing another track's tracklet gets cost + w * (1 - cost). Tentative tracks
    #: instead take the predicted displacement as their motion. 0 ignores links and
    #: displacements.
    link_weight: float = 0.5
    #: Score-scale adaptation (``tracking/scores.py``): before any threshold, scores are
    #: mapped by the running ``score_quantile`` of the video's own scores to
    #: ``score_reference``, so one set of thresholds serves detectors of different scales
    #: (scores times a constant give the same tracks). Reported scores are the mapped ones.
    score_adaptation: bool = True
    score_quantile: float = 0.99
    score_reference: float = 0.9
    #: Adaptation only lifts: a detector whose ``score_quantile`` reaches ``score_reference``
    #: keeps its scores, so the thresholds apply as tuned; only a low or squeezed scale is
    #: mapped up to the reference, once ``RAISE_MIN_SCORES`` scores have been seen.
    score_raise_only: bool = True


class _TrackTable:
    """Per-track state as parallel arrays; row i of every array is track i."""

    FIELDS = (
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
        "score",
        "emb_frame",
        "tracklet",
        "weak",
        "emb",
    )

    def __init__(self) -> None:
        self.ids = np.zeros(0, np.int64)  # 0 until confirmed
        self.status = np.zeros(0, np.int8)
        self.hits = np.zeros(0, np.int64)  # consecutive matched frames
        self.misses = np.zeros(0, np.int64)  # frames since the last match
        self.last_frame = np.zeros(0, np.int64)  # frame of the last match
        self.last_box = np.zeros((0, 4))  # last matched box, cx cy w h
        self.mean = np.zeros((0, 8))
        self.cov = np.zeros((0, 4, 2, 2))  # per-coordinate blocks, see tracking/kalman.py
        # Kalman state right after the last match; written when a track first misses.
        self.obs_mean = np.zeros((0, 8))
        self.obs_cov = np.zeros((0, 4, 2, 2))
        self.score = np.zeros(0)
        self.emb_frame = np.zeros(0, np.int64)  # frame of the last appearance update
        self.tracklet = np.zeros(0, np.int64)  # detector tracklet of the last match, -1 none
        self.weak = np.zeros(0, bool)  # born from a low-score detection (low_birth_score)
        self.emb: np.ndarray | None = None  # (N, D) once any embedding was seen

    def __len__(self) -> int:
        return len(self.ids)

    def keep(self, rows: np.ndarray) -> None:
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[rows])

    def extend(self, new: dict) -> None:
        for name, value in new.items():
            setattr(self, name, np.concatenate([getattr(self, name), value]))


def _where(mask: np.ndarray) -> np.ndarray:
    """Indices of True entries of a 1-D mask (np.flatnonzero without its ravel overhead)."""
    return mask.nonzero()[0]


def _has_appearance(emb: np.ndarray) -> np.ndarray:
    """Rows that hold an embedding (lazy appearance leaves zero rows where none was made)."""
    return (emb != 0).any(axis=1)


def _xyxy(cxcywh: np.ndarray) -> np.ndarray:
    half = cxcywh[:, 2:4] / 2
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)


def _cxcywh(xyxy: np.ndarray) -> np.ndarray:
    wh = xyxy[:, 2:4] - xyxy[:, :2]
    return np.concatenate([xyxy[:, :2] + wh / 2, wh], axis=1)


class Tracker:
    """Online multi-object tracker: ``update`` once per frame, in order; ``reset`` per video."""

    def __init__(
        self,
        config: TrackerConfig | None = None,
        frame_rate: float = 30.0,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        """``image_size`` (width, height), when known, clips boxes to the image even when
        ``update`` gets no frame (public detections with a seqinfo.ini)."""
        self.config = config or TrackerConfig()
        self.frame_rate = float(frame_rate)
        self.image_size = image_size
        self.kalman = KalmanFilter()
        self.camera = None
        if self.config.camera_motion:
            from heatrack.tracking.motion import CameraMotion

            self.camera = CameraMotion()
        self.score_scale = None
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart ids at 1."""
        self._t = _TrackTable()
        self._next_id = 1
        self._frame = self._previous_frame = 0
        self._emb_dim: int | None = None
        if self.camera is not None:
            self.camera.reset()
        if self.config.score_adaptation:
            self.score_scale = ScoreScale(
                self.config.score_quantile,
                self.config.score_reference,
                raise_only=self.config.score_raise_only,
                min_scores=RAISE_MIN_SCORES if self.config.score_raise_only else 1,
            )

    #: Version of ``state_dict``'s layout; a state of another version is refused.
    STATE_VERSION = 2

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything ``update`` will read, as plain arrays (no Python objects): what
        ``heatrack track --resume`` saves with ``np.savez`` and reads with pickling off."""
        t = self._t
        state = {f"track.{n}": getattr(t, n) for n in t.FIELDS if getattr(t, n) is not None}
        counters = [self.STATE_VERSION, self._next_id, self._frame, self._previous_frame,
                    -1 if self._emb_dim is None else self._emb_dim]  # fmt: skip
        state["counters"] = np.asarray(counters, np.int64)
        if self.camera is not None:
            state.update(self.camera.state_dict())
        if self.score_scale is not None:
            state.update(self.score_scale.state_dict())
        return state

    def load_state_dict(self, state) -> None:
        """Continue from ``state_dict()``'s arrays (a mapping, such as an opened ``.npz``);
        a state of another layout raises ``ValueError``."""
        counters = np.asarray(state["counters"], np.int64)
        if len(counters) != 5 or counters[0] != self.STATE_VERSION:
            raise ValueError(f"tracker state version {counters[:1]} is not {self.STATE_VERSION}")
        table = _TrackTable()
        for name in table.FIELDS:
            key = f"track.{name}"
            if key in state:
                value = np.asarray(state[key])
                empty = getattr(table, name)
                if empty is not None and (value.dtype, value.shape[1:]) != (
                    empty.dtype,
                    empty.shape[1:],
                ):
                    raise ValueError(
                        f"tracker state: {key} has dtype {value.dtype} and shape "
                        f"{value.shape}, not {empty.dtype} (n, *{empty.shape[1:]})"
                    )
                setattr(table, name, value)
        sizes = {len(getattr(table, n)) for n in table.FIELDS if getattr(table, n) is not None}
        if len(sizes) > 1:
            raise ValueError(f"tracker state: per-track arrays of different lengths {sizes}")
        self._t = table
        _, self._next_id, self._frame, self._previous_frame, emb_dim = (int(v) for v in counters)
        self._emb_dim = None if emb_dim < 0 else emb_dim
        if self.camera is not None:
            self.camera.load_state_dict(state)
        if self.score_scale is not None:
            self.score_scale.load_state_dict(state)

    @property
    def frame_index(self) -> int:
        """Index of the last frame seen (0 before the first)."""
        return self._frame

    def _gate(self, cost: float, other_stage: bool = False) -> float:
        cfg = self.config
        if cfg.gate_fps_power == 0 or (other_stage and not cfg.gate_all_stages):
            return cost
        slow = min(1.0, self.frame_rate / cfg.gate_reference_fps) ** cfg.gate_fps_power
        return 1.0 - (1.0 - cost) * slow

    @property
    def max_lost_frames(self) -> int:
        return max(1, round(self.config.max_lost_seconds * self.frame_rate))

    @property
    def reid_max_lost_frames(self) -> int:
        return max(self.max_lost_frames, round(self.config.reid_max_lost_seconds * self.frame_rate))

    def update(
        self,
        detections: Detections,
        frame: np.ndarray | None = None,
        frame_index: int | None = None,
        embed: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Tracks:
        """Advance one frame; return the confirmed tracks matched in it, plus established
        tracks coasting through a short miss at their predicted box (``det_index`` -1).

        Appearance comes either with the detections (``detections.embeddings``) or lazily:
        ``embed(rows)`` returns unit vectors (len(rows), D) for those rows of ``detections``,
        and is asked only for the rows that need one (ambiguous matches, possible
        re-identifications, births, and each track's refresh every
        ``appearance_refresh_frames``), which saves most of the embedding work.

        ``frame_index`` (1-based) defaults to the next frame; a skipped index (a frame that
        could not be decoded) predicts over the gap, and an index not after the previous one
        raises ``ValueError``. Detections are cleaned first: rows with a NaN or infinite box
        or score, or with right < left or bottom < top, are dropped (logged as a warning);
        rows scoring below ``low_score`` are ignored; with a ``frame`` (or ``image_size``),
        boxes are clipped to the image, and boxes then smaller than ``min_box_size`` (those
        entirely outside it among them) are dropped.
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
        kept, xyxy, scores, emb = self._clean(detections, frame)
        links = moved_back = None
        if detections.tracklets is not None and cfg.link_weight > 0:
            links = detections.tracklets[kept]
            if detections.displacement is not None:  # each box where the network saw it last
                moved_back = xyxy + np.tile(detections.displacement[kept], 2)
        t = self._t

        if self.camera is not None and frame is not None:
            affine = self.camera.estimate(frame, xyxy)
            if affine is not None and len(t):
                t.mean, t.cov = self.kalman.warp(t.mean, t.cov, affine)
                t.obs_mean, t.obs_cov = self.kalman.warp(t.obs_mean, t.obs_cov, affine)
                t.last_box[:, :2] = t.last_box[:, :2] @ affine[:, :2].T + affine[:, 2]
            if affine is not None and moved_back is not None:
                # Where the network saw each person in the previous image, in this image's
                # view, as the tracks' last boxes just were.
                centres = (moved_back[:, :2] + moved_back[:, 2:]) / 2
                shift = centres @ affine[:, :2].T + affine[:, 2] - centres
                moved_back = moved_back + np.tile(shift, 2)
        # State after the previous frame's updates: for tracks matched then, it is the state
        # at their last observation, which the re-update replays from if they now miss.
        # (The in-place edit below touches only LOST rows, which are never first misses.)
        before_mean, before_cov = t.mean, t.cov
        if len(t):
            t.mean[t.status == LOST, 6:8] = 0.0  # no size change while nobody sees the person
            t.mean, t.cov = self.kalman.predict(t.mean, t.cov, steps)
            t.misses += steps
        if emb is None and embed is not None and len(xyxy):
            emb = self._lazy_embeddings(embed, kept, xyxy, scores)

        match = np.full(len(t), -1)  # detection row matched to each track
        free = scores >= cfg.high_score  # confident detections not matched yet
        weak = None  # with low-score births: the other detections from low_birth_score up
        if cfg.low_birth_score < cfg.new_track_score:
            weak = ~free & (scores >= cfg.low_birth_score)
        if len(t) and len(scores):
            self._associate(match, free, xyxy, scores, emb, links, moved_back, weak)

        # Tracks missing for the first time keep their last observed state for the re-update.
        first_miss = (match < 0) & (t.last_frame == self._previous_frame)
        if first_miss.any():
            t.obs_mean[first_miss] = before_mean[first_miss]
            t.obs_cov[first_miss] = before_cov[first_miss]
        self._apply_matches(match, xyxy, scores, emb, links)
        # Lifecycle: missed confirmed tracks are lost; missed tentative or too old ones go.
        unmatched = match < 0
        t.status[unmatched & (t.status == CONFIRMED)] = LOST
        limit = self.reid_max_lost_frames if t.emb is not None else self.max_lost_frames
        dead = (unmatched & (t.status == TENTATIVE)) | (t.misses > limit)
        if dead.any():
            t.keep(~dead)
            match = match[~dead]
        births = _where(free & (scores >= cfg.new_track_score))
        born_weak = np.zeros(len(births), bool)
        if weak is not None:  # then the low-score births, after the confident ones
            low = _where((free | weak) & (scores < cfg.new_track_score))
            births = np.concatenate([births, low])
            born_weak = np.concatenate([born_weak, np.ones(len(low), bool)])
        if len(births):
            self._start_tracks(
                xyxy[births],
                scores[births],
                None if emb is None else emb[births],
                None if links is None else links[births],
                born_weak,
            )
            match = np.concatenate([match, births])
        return self._report(match, xyxy, scores, emb, kept)

    # --- steps of update -------------------------------------------------------------

    def _clean(self, dets: Detections, frame: np.ndarray | None):
        """Valid rows as (kept row indices, xyxy float64, scores float64, embeddings or None)."""
        xyxy, scores, emb = dets.xyxy, dets.scores, dets.embeddings
        if self.score_scale is not None:
            scores = self.score_scale(scores)
        xyxy = xyxy.astype(np.float64)
        wh = xyxy[:, 2:] - xyxy[:, :2]
        # NaN fails every comparison; only infinities need their own test.
        ok = (wh >= 0).all(axis=1) & (np.abs(xyxy) < np.inf).all(axis=1) & (np.abs(scores) < np.inf)
        n_bad = len(ok) - int(np.count_nonzero(ok))
        if n_bad:
            log.warning(
                "frame %d: dropped %d detections with NaN/inf or inverted boxes", self._frame, n_bad
            )
        ok &= scores >= self.config.low_score
        size = (frame.shape[1], frame.shape[0]) if frame is not None else self.image_size
        if size is not None:
            np.clip(xyxy[:, 0::2], 0, size[0], out=xyxy[:, 0::2])
            np.clip(xyxy[:, 1::2], 0, size[1], out=xyxy[:, 1::2])
            wh = xyxy[:, 2:] - xyxy[:, :2]
        ok &= (wh >= self.config.min_box_size).all(axis=1)
        kept = _where(ok)
        if emb is not None:
            if self._emb_dim is None:
                self._emb_dim = emb.shape[1]
            elif emb.shape[1] != self._emb_dim:
                raise ValueError(
                    f"frame {self._frame}: embeddings have {emb.shape[1]} dimensions, "
                    f"earlier frames had {self._emb_dim}"
                )
            emb = emb[kept].astype(np.float64)
        return kept, xyxy[kept], scores[kept].astype(np.float64), emb

    def _lazy_embeddings(self, embed, kept, xyxy, scores) -> np.ndarray | None:
        """(N, D) appearance for the cleaned rows, computed only where it can matter; the
        other rows get zero vectors, which pass no appearance gate and teach nothing."""
        cfg, t = self.config, self._t
        need = scores >= cfg.high_score  # only confident rows are matched by appearance
        if len(t):
            pool = (t.status != TENTATIVE) & (t.misses <= self.max_lost_frames)
            near = iou_cost(_xyxy(t.mean[:, :4]), xyxy) < cfg.proximity_gate
            near_pool = near[pool]
            per_det, per_track = near_pool.sum(0), near_pool.sum(1)
            ambiguous = (per_det >= 2) | near_pool[per_track >= 2].any(0)
            has = _has_appearance(t.emb) if t.emb is not None else np.zeros(len(t), bool)
            stale = ~has | (self._frame - t.emb_frame >= cfg.appearance_refresh_frames)
            refresh = near[stale].any(0)
            lonely = ~near.any(0)  # births, and re-identification candidates
            need &= ambiguous | refresh | lonely
            if cfg.appearance_veto < 1.0:  # a track back from a miss is the risky match
                need |= (scores >= cfg.high_score) & near[pool & (t.misses > 1)].any(0)
        rows = _where(need)
        if not len(rows):
            return None if self._emb_dim is None else np.zeros((len(xyxy), self._emb_dim))
        vectors = np.asarray(embed(kept[rows]), np.float64)
        if self._emb_dim is None:
            self._emb_dim = vectors.shape[1]
        emb = np.zeros((len(xyxy), vectors.shape[1]))
        emb[rows] = vectors
        return emb

    def _associate(self, match, free, xyxy, scores, emb, links, moved_back, weak=None) -> None:
        """Fill ``match`` (track -> detection row) stage by stage; clear ``free`` (and
        ``weak``, the low-score detections tentative tracks may take) as used.
        ``moved_back``: the detections' boxes moved by the network's displacement to the
        previous frame (detectors with the displacement head), else None."""
        cfg, t = self.config, self._t

        def linked(cost, pool, dets):
            return cost if links is None else self._link_cost(cost, pool, links[dets])

        pred = _xyxy(t.mean[:, :4])
        status = t.status
        fused = scores if cfg.fuse_score else None
        use_app = emb is not None and t.emb is not None

        # Stage 1: confirmed and recently lost tracks vs confident detections.
        pool = _where((status != TENTATIVE) & (t.misses <= self.max_lost_frames))
        dets = _where(free)
        if len(pool) and len(dets):
            motion_cost = diou_cost if cfg.distance_iou else iou_cost
            motion = motion_cost(pred[pool], xyxy[dets], None if fused is None else fused[dets])
            cost = linked(motion, pool, dets)
            if use_app:
                app = appearance_cost(t.emb[pool], emb[dets])
                if cfg.appearance_veto < 1.0:
                    seen = _has_appearance(t.emb[pool])[:, None] & _has_appearance(emb[dets])
                    veto = seen & (app >= cfg.appearance_veto)
                    veto &= motion >= cfg.appearance_veto_min_cost
                    motion = np.where(veto, 1.0, motion)
                    cost = np.where(veto, 1.0, cost)
                cost = fuse_appearance(
                    motion,
                    app,
                    cfg.appearance_gate,
                    cfg.proximity_gate,
                    cfg.appearance_clear_margin,
                    cost=cost,
                )
            self._assign(match, free, pool, dets, cost, self._gate(cfg.match_cost))

        # Stage 2: confirmed tracks (seen last frame) vs low-score detections.
        dets = _where(scores < cfg.high_score)
        pool = _where((match < 0) & (status == CONFIRMED)) if len(dets) else dets
        if len(pool) and len(dets):
            cost = linked(iou_cost(pred[pool], xyxy[dets]), pool, dets)
            self._assign(match, weak, pool, dets, cost, self._gate(cfg.low_match_cost, True))

        # Stage 3: last observed box of unmatched confirmed/lost tracks vs confident ones left.
        if cfg.recovery_match_cost < 1.0:
            pool = _where((match < 0) & (status != TENTATIVE) & (t.misses <= self.max_lost_frames))
            dets = _where(free)
            if len(pool) and len(dets):
                cost = iou_cost(_xyxy(t.last_box[pool]), xyxy[dets])
                self._assign(match, free, pool, dets, cost, cfg.recovery_match_cost)

        # Stage 4: tentative tracks vs confident detections left (and, with low-score
        # births, the low-score ones from low_birth_score up).
        pool = _where(status == TENTATIVE)
        left = free if weak is None else free | weak
        dets = _where(left) if len(pool) else pool
        if len(pool) and len(dets):
            weights = None if fused is None else fused[dets]
            if weights is not None and weak is not None:  # low scores: plain IoU, as stage 2
                weights = np.where(weak[dets], 1.0, weights)
            cost = iou_cost(pred[pool], xyxy[dets], weights)
            if moved_back is not None:
                # A tentative track has no velocity yet; the network's displacement is its
                # motion: where the detection was a frame ago against where the track was.
                seen = iou_cost(_xyxy(t.last_box[pool]), moved_back[dets], weights)
                cost = np.minimum(cost, seen)
            self._assign(match, left, pool, dets, cost, self._gate(cfg.tentative_match_cost, True))
            if weak is not None:
                free &= left
                weak &= left

        # Stage 5: re-identify long-lost tracks by appearance.
        if use_app:
            pool = _where((match < 0) & (status == LOST))
            dets = _where(free)
            if len(pool) and len(dets):
                cost = appearance_cost(t.emb[pool], emb[dets])
                cost[~self._reid_reachable(pool, xyxy[dets])] = 1.0
                if cfg.reid_margin > 0:
                    cost[~decisive(cost, cfg.reid_margin)] = 1.0
                self._assign(match, free, pool, dets, cost, cfg.reid_cost)

    def _link_cost(self, cost: np.ndarray, pool: np.ndarray, det_links: np.ndarray) -> np.ndarray:
        """``cost`` with the detector's links applied (see ``TrackerConfig.link_weight``)."""
        w = self.config.link_weight
        mine = self._t.tracklet[pool]
        same = (mine[:, None] == det_links[None, :]) & (det_links[None, :] >= 0)
        owned = np.isin(det_links, self._t.tracklet[self._t.tracklet >= 0])
        other = owned[None, :] & ~same
        cost = np.where(same, cost * (1.0 - w), cost)
        return np.where(other, cost + w * (1.0 - cost), cost)

    @staticmethod
    def _assign(match, free, pool, dets, cost, threshold) -> None:
        rows, cols = match_pairs(cost, threshold)
        match[pool[rows]] = dets[cols]
        if free is not None:
            free[dets[cols]] = False

    def _reid_reachable(self, pool: np.ndarray, det_xyxy: np.ndarray) -> np.ndarray:
        """(len(pool), D) mask: a lost track could have walked to the detection in its gap."""
        t = self._t
        gap_s = (self._frame - t.last_frame[pool]) / self.frame_rate
        last = t.last_box[pool]
        centers = (det_xyxy[:, :2] + det_xyxy[:, 2:]) / 2
        dist = np.linalg.norm(last[:, None, :2] - centers[None, :, :], axis=2)
        reach = self.config.reid_max_distance * last[:, 3] * (1 + np.sqrt(gap_s))
        return dist <= reach[:, None]

    def _apply_matches(self, match, xyxy, scores, emb, links) -> None:
        t, cfg = self._t, self.config
        rows = _where(match >= 0)
        if len(rows) == 0:
            return
        d = match[rows]
        t.tracklet[rows] = -1 if links is None else links[d]
        boxes = _cxcywh(xyxy[d])
        confidence = scores[d] if cfg.score_scaled_noise else None
        # Tracks seen in the previous frame take one Kalman update; tracks back from a gap
        # replay it instead (observation-centric re-update).
        direct = t.last_frame[rows] >= self._previous_frame
        if direct.all() and len(rows) == len(t):  # every track seen last frame and now
            t.mean, t.cov = self.kalman.update(t.mean, t.cov, boxes, confidence)
        elif direct.all():  # the usual frame: nobody comes back from a gap
            t.mean[rows], t.cov[rows] = self.kalman.update(
                t.mean[rows], t.cov[rows], boxes, confidence
            )
        else:
            for part, replay in ((direct, False), (~direct, True)):
                if not part.any():
                    continue
                r = rows[part]
                conf = None if confidence is None else confidence[part]
                if replay:
                    t.mean[r], t.cov[r] = self._reupdate(r, boxes[part], conf)
                else:
                    t.mean[r], t.cov[r] = self.kalman.update(t.mean[r], t.cov[r], boxes[part], conf)
        t.last_box[rows] = boxes
        t.last_frame[rows] = self._frame
        t.score[rows] = scores[d]
        hits = np.where(direct, t.hits[rows] + 1, 1)  # consecutive matches, else a new run
        t.hits[rows] = hits
        t.misses[rows] = 0
        status = t.status[rows]
        confirm = (status == LOST) | ((status == TENTATIVE) & (hits >= cfg.min_hits))
        weak = t.weak[rows]
        if weak.any():  # low-score births: longer evidence, and motion where asked
            proven = hits >= cfg.low_birth_hits
            if cfg.low_birth_min_speed > 0:
                speed = np.hypot(t.mean[rows, 4], t.mean[rows, 5]) * self.frame_rate
                proven &= speed >= cfg.low_birth_min_speed * t.mean[rows, 3]
            confirm &= ~weak | (status == LOST) | proven
        if not confirm.any():
            if emb is not None:
                self._update_embeddings(rows, emb[d], scores[d])
            return
        t.status[rows[confirm]] = CONFIRMED
        fresh = rows[confirm & (t.ids[rows] == 0)]
        if len(fresh):
            t.ids[fresh] = np.arange(self._next_id, self._next_id + len(fresh))
            self._next_id += len(fresh)
        if emb is not None:
            self._update_embeddings(rows, emb[d], scores[d])

    def _reupdate(self, rows: np.ndarray, boxes: np.ndarray, conf) -> tuple[np.ndarray, np.ndarray]:
        """Replay each track's gap from its last observation along a straight line to its new
        box: predict to the next virtual observation, update with the interpolated box, and
        so on. A gap of g frames gets min(g, ``reupdate_points``) evenly spaced observations,
        the last one being the real box. All returning tracks step together, one virtual
        observation at a time (a loop over at most ``reupdate_points``, not over tracks)."""
        t = self._t
        mean, cov = t.obs_mean[rows], t.obs_cov[rows]  # fancy indexing: copies
        gap = self._frame - t.last_frame[rows]
        points = np.minimum(gap, max(1, self.config.reupdate_points))
        start = t.last_box[rows]
        travel = boxes - start
        done = np.zeros(len(rows), np.int64)
        for i in range(1, int(points.max()) + 1):
            live = _where(points >= i)
            reach = np.round(gap[live] * i / points[live]).astype(np.int64)
            m, c = self.kalman.predict(mean[live], cov[live], reach - done[live])
            virtual = start[live] + travel[live] * (reach / gap[live])[:, None]
            c_live = None if conf is None else conf[live]
            mean[live], cov[live] = self.kalman.update(m, c, virtual, c_live)
            done[live] = reach
        return mean, cov

    def _update_embeddings(self, rows: np.ndarray, emb: np.ndarray, scores: np.ndarray) -> None:
        t = self._t
        if t.emb is None:
            t.emb = np.zeros((len(t), emb.shape[1]))
        m = self.config.embedding_momentum
        old = t.emb[rows]
        has_old = _has_appearance(old)
        # Confident detections teach appearance; occluded, low-score ones would blur it.
        teach = scores >= self.config.high_score
        new = np.where(has_old[:, None], m * old + (1 - m) * emb, emb)
        new /= np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-12)
        t.emb[rows] = np.where((teach | ~has_old)[:, None], new, old)
        seen = teach & _has_appearance(emb)  # zero rows: not embedded this frame
        t.emb_frame[rows[seen]] = self._frame

    def _start_tracks(
        self,
        xyxy: np.ndarray,
        scores: np.ndarray,
        emb: np.ndarray | None,
        links: np.ndarray | None = None,
        weak: np.ndarray | None = None,
    ) -> None:
        """New tracks; confirmed at once in the first frame or when ``min_hits`` is 1. Rows
        marked ``weak`` (low-score births) stay tentative until ``low_birth_hits``
        consecutive matches (see ``_apply_matches``)."""
        t = self._t
        n = len(xyxy)
        weak = np.zeros(n, bool) if weak is None else weak
        boxes = _cxcywh(xyxy)
        mean, cov = self.kalman.initiate(boxes)
        at_once = self._frame == 1 or self._previous_frame == 0 or self.config.min_hits <= 1
        first = ~weak & at_once
        ids = np.zeros(n, np.int64)
        n_first = int(first.sum())
        if n_first:
            ids[first] = np.arange(self._next_id, self._next_id + n_first)
            self._next_id += n_first
        old_n = len(t)
        t.extend(
            {
                "ids": ids,
                "status": np.where(first, CONFIRMED, TENTATIVE).astype(np.int8),
                "hits": np.ones(n, np.int64),
                "misses": np.zeros(n, np.int64),
                "last_frame": np.full(n, self._frame, np.int64),
                "last_box": boxes,
                "mean": mean,
                "cov": cov,
                "obs_mean": mean.copy(),
                "obs_cov": cov.copy(),
                "score": scores,
                "emb_frame": np.full(
                    n,
                    self._frame if emb is not None else np.iinfo(np.int64).min // 2,
                    np.int64,
                ),
                "tracklet": np.full(n, -1, np.int64) if links is None else links,
                "weak": weak,
            }
        )
        if emb is not None or t.emb is not None:
            dim = emb.shape[1] if emb is not None else t.emb.shape[1]
            old = t.emb if t.emb is not None else np.zeros((old_n, dim))
            t.emb = np.concatenate([old, emb if emb is not None else np.zeros((n, dim))])

    def _report(self, match, xyxy, scores, emb, kept) -> Tracks:
        t = self._t
        matched = (t.status == CONFIRMED) & (t.misses == 0)
        coasting = (
            (t.status == LOST)
            & (t.misses <= self.config.coast_frames)
            & (t.hits >= self.config.coast_min_run)
        )
        show = _where(matched | coasting)
        d = match[show]
        boxes = _xyxy(t.mean[show, :4])
        if not self.config.output_kalman_box:
            boxes[d >= 0] = xyxy[d[d >= 0]]
        embeddings = None
        if emb is not None:
            embeddings = np.zeros((len(show), emb.shape[1]), np.float32)
            embeddings[d >= 0] = emb[d[d >= 0]]
        # d == -1 (coasting) picks the appended -1: no detection row.
        det_index = np.append(kept, -1)[d]
        return Tracks._trusted(
            xyxy=boxes.astype(np.float32),
            scores=t.score[show].astype(np.float32),
            embeddings=embeddings,
            ids=t.ids[show],
            det_index=det_index,
        )
