"""Self-training: turn unlabelled videos into training sequences with pseudo ground truth.

A trained detector runs over the video (its maps already averaged over every T-frame window),
the tracker links the detections, and only what persists over time is kept as a pedestrian:
a track must last ``min_track_seconds``, peak at ``min_peak_score``, move, and be upright.
Everything the model was unsure of (short, weak, still or wide tracks, unmatched detections
above ``ignore_score``) becomes an ignore region, so the student is neither taught nor
punished there. The result is an ordinary video-backed MOTChallenge folder (``seqinfo.ini``,
the video linked in, ``gt/gt.txt``) that ``heatrack train detector`` reads like any labelled
sequence.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heatrack.io.mot import MotRows, SeqInfo, write_gt, write_seqinfo
from heatrack.tracking.tracker import Tracker, TrackerConfig
from heatrack.types import Detections

#: MOT17 "distractor": a region the detector is neither rewarded nor punished for.
IGNORE_CLASS = 8


def _teacher_tracker() -> TrackerConfig:
    """The tracker for pseudo-labels. A detector on scenes it never saw peaks at 0.3-0.6, not
    at the 0.6-1.0 of the public detections the default thresholds were tuned on, and score
    fusion would then forbid every match; persistence, not the score, decides here."""
    return TrackerConfig(high_score=0.25, new_track_score=0.3, low_score=0.15, fuse_score=False)


@dataclass(frozen=True)
class PseudoLabelConfig:
    #: A track is a pseudo-pedestrian only if it is matched for at least this long ...
    min_track_seconds: float = 0.5
    #: ... and its best detection scores at least this ...
    min_peak_score: float = 0.4
    #: ... and it moves: the extent of its centre's path is at least this many box heights.
    #: Persistence alone favours what never moves: windows, bollards, lamp posts. A person
    #: standing still is only left out (ignored), not taught as background.
    min_motion: float = 0.5
    #: ... and it is upright: median height / width at least this (cars are wide).
    min_aspect: float = 1.5
    #: Detections at or above this score outside kept tracks become ignore regions; the
    #: detector is run with this as its score threshold.
    ignore_score: float = 0.15
    tracker: TrackerConfig = dataclasses.field(default_factory=_teacher_tracker)


def pseudo_label(
    detections: Iterable[tuple[int, Detections]],
    frame_rate: float,
    image_size: tuple[int, int],
    config: PseudoLabelConfig = PseudoLabelConfig(),
) -> MotRows:
    """MOT17-style gt rows from per-frame detections (1-based frames, in order)."""
    tracker = Tracker(dataclasses.replace(config.tracker, min_hits=1), frame_rate, image_size)
    track_rows = []  # (frame, id, xyxy, score)
    loose = []  # (frame, xyxy) of detections no track took
    for frame, dets in detections:
        dets = dets[dets.scores >= config.ignore_score]
        tracks = tracker.update(dets, frame_index=frame)
        taken = np.zeros(len(dets), bool)
        for k in range(len(tracks)):
            d = int(tracks.det_index[k])
            if d >= 0:
                taken[d] = True
                track_rows.append((frame, int(tracks.ids[k]), dets.xyxy[d], float(dets.scores[d])))
            else:  # coasting through a short miss: the track says the person is still there
                track_rows.append((frame, int(tracks.ids[k]), tracks.xyxy[k], 0.0))
        loose.extend((frame, box) for box in dets.xyxy[~taken])

    min_frames = max(2, round(config.min_track_seconds * frame_rate))
    ids = np.array([r[1] for r in track_rows], np.int64)
    scores = np.array([r[3] for r in track_rows])
    kept = set()
    boxes = np.array([r[2] for r in track_rows], np.float64).reshape(-1, 4)
    for tid in np.unique(ids):
        mine = ids == tid
        if (scores[mine] > 0).sum() < min_frames or scores[mine].max() < config.min_peak_score:
            continue
        b = boxes[mine]
        heights, widths = b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]
        centres = (b[:, :2] + b[:, 2:]) / 2
        path = np.linalg.norm(centres.max(axis=0) - centres.min(axis=0))
        if path < config.min_motion * np.median(heights):
            continue
        if np.median(heights / np.maximum(widths, 1e-6)) < config.min_aspect:
            continue
        kept.add(int(tid))

    frames, out_ids, boxes, classes = [], [], [], []
    for frame, tid, box, _ in track_rows:
        frames.append(frame)
        out_ids.append(tid)
        boxes.append(box)
        classes.append(1 if tid in kept else IGNORE_CLASS)
    next_id = int(ids.max()) + 1 if len(ids) else 1
    for k, (frame, box) in enumerate(loose):
        frames.append(frame)
        out_ids.append(next_id + k)
        boxes.append(box)
        classes.append(IGNORE_CLASS)
    n = len(frames)
    if n == 0:
        return MotRows.empty()
    xyxy = np.asarray(boxes, np.float64).reshape(-1, 4)
    classes = np.asarray(classes, np.int64)
    return MotRows(
        frames=np.asarray(frames, np.int64),
        ids=np.asarray(out_ids, np.int64),
        xywh=np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1),
        conf=(classes == 1).astype(np.float64),
        classes=classes,
        visibility=np.ones(n),
        gt_format="mot17",
    )


def write_pseudo_sequence(
    out_dir: str | os.PathLike,
    video: str | os.PathLike,
    info: SeqInfo,
    rows: MotRows,
) -> Path:
    """A video-backed MOTChallenge folder ``out_dir/<name>`` with the pseudo gt."""
    folder = Path(out_dir) / info.name
    (folder / "gt").mkdir(parents=True, exist_ok=True)
    video = Path(video).resolve()
    link = folder / f"{info.name}{video.suffix}"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(video)
    write_seqinfo(folder, info)
    write_gt(folder / "gt" / "gt.txt", rows)
    return folder
