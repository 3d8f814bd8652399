"""Self-training: turn unlabelled videos into training sequences with pseudo ground truth.

A trained detector runs over the video (its maps already averaged over every T-frame window),
the tracker links the detections, and only what persists over time is kept as a pedestrian:
a track must last ``min_track_seconds``, peak at ``min_peak_score``, move, and be upright.
Everything the model was unsure of (short, weak, still or wide tracks, unmatched detections
above ``ignore_score``) becomes an ignore region, so the student is neither taught nor
punished there. The result is an ordinary video-backed MOTChallenge folder (``seqinfo.ini``,
the video linked in, ``gt/gt.txt``) that ``heatrack train detector`` reads like any labelled
sequence.

The teacher is heatrack's detector, a COCO YOLOX export (``heatrack.models.yolox``), or several
of them as an ``Ensemble``: boxes the members agree on are fused, and a box only one member
finds keeps a share of its score, so it becomes an ignore region rather than a pedestrian
unless that member is very sure.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heatrack.boxes import iou_matrix
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


class Ensemble:
    """Several detectors as one teacher: every frame goes through each, and their boxes are
    fused (``fuse_boxes``)."""

    def __init__(self, members: list, iou: float = 0.55) -> None:
        self.members = members
        self.iou = iou
        self.frames = max(getattr(m, "frames", 1) for m in members)

    def stream(
        self, frames: Iterable[tuple[int, np.ndarray]], keep_maps: bool = False
    ) -> Iterator[tuple[int, Detections, None]]:
        copies = itertools.tee(frames, len(self.members))  # each member lags as it must
        streams = [m.stream(c) for m, c in zip(self.members, copies, strict=True)]
        for outputs in zip(*streams, strict=True):
            index = outputs[0][0]
            if any(o[0] != index for o in outputs):
                raise RuntimeError(f"ensemble members disagree on frame order at {index}")
            yield index, fuse_boxes([o[1] for o in outputs], self.iou), None


def fuse_boxes(per_member: list[Detections], iou: float = 0.55) -> Detections:
    """One set of boxes from M members' detections of a frame. Boxes are grouped greedily,
    best score first, with every box of another member overlapping the group's first by
    ``iou`` or more (one box per member); a group's box is the score-weighted mean and its
    score the sum of its scores over M: agreement counts, one member alone gets a share."""
    m = len(per_member)
    boxes = [d.xyxy.astype(np.float64) for d in per_member]
    scores = [d.scores.astype(np.float64) for d in per_member]
    who = np.concatenate([np.full(len(b), i) for i, b in enumerate(boxes)]).astype(int)
    xyxy, score = np.concatenate(boxes).reshape(-1, 4), np.concatenate(scores)
    order = np.argsort(-score, kind="stable")
    free = np.ones(len(score), bool)
    overlap = iou_matrix(xyxy, xyxy) if len(score) else np.zeros((0, 0))
    out_boxes, out_scores = [], []
    for i in order:
        if not free[i]:
            continue
        group = [i]
        free[i] = False
        for member in range(m):
            if member == who[i]:
                continue
            candidates = np.flatnonzero(free & (who == member) & (overlap[i] >= iou))
            if len(candidates):
                best = candidates[np.argmax(overlap[i, candidates])]
                group.append(best)
                free[best] = False
        w = score[group]
        out_boxes.append((xyxy[group] * w[:, None]).sum(0) / w.sum())
        out_scores.append(w.sum() / m)
    if not out_boxes:
        return Detections.empty()
    return Detections(xyxy=np.array(out_boxes, np.float32), scores=np.array(out_scores, np.float32))


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
