"""Wiring of the flow: detections -> Tracker -> result rows. Used by the CLI and the API."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from heatrack.io.mot import MotRows, read_detections, read_seqinfo
from heatrack.io.sources import open_source
from heatrack.tracking.postprocess import interpolate
from heatrack.tracking.tracker import Tracker, TrackerConfig
from heatrack.types import Detections, Tracks


def detections_by_frame(rows: MotRows, length: int) -> Iterator[tuple[int, Detections]]:
    """Per-frame Detections for frames 1..length from MOTChallenge detection rows (empty
    frames included, so the tracker sees time pass)."""
    per_frame = dict(rows.by_frame())
    for f in range(1, length + 1):
        r = per_frame.get(f)
        if r is None:
            yield f, Detections.empty()
        else:
            yield f, Detections.from_xywh(r.xywh, scores=r.conf)


def track_detections(
    frames: Iterable[tuple[int, Detections]], tracker: Tracker
) -> Iterator[tuple[int, Tracks]]:
    """Run the tracker over ``(frame_index, Detections)`` pairs, yielding its Tracks."""
    for index, dets in frames:
        yield index, tracker.update(dets, frame_index=index)


def frames_to_rows(per_frame: Iterable[tuple[int, Detections]], source: str = "") -> MotRows:
    """Collect per-frame Tracks (or Detections, id -1) into MOTChallenge rows."""
    frames, ids, xywh, scores = [], [], [], []
    for index, tracks in per_frame:
        frames.append(np.full(len(tracks), index, np.int64))
        ids.append(getattr(tracks, "ids", np.full(len(tracks), -1, np.int64)))
        xywh.append(tracks.xywh.astype(np.float64))
        scores.append(tracks.scores.astype(np.float64))
    if not frames:
        return MotRows.empty()
    n = sum(len(f) for f in frames)
    return MotRows(
        np.concatenate(frames),
        np.concatenate(ids),
        np.concatenate(xywh).reshape(-1, 4),
        np.concatenate(scores),
        np.ones(n, np.int64),
        np.ones(n),
        source,
    )


def find_sequence_folders(source: str | os.PathLike) -> list[Path]:
    """A sequence folder (with ``seqinfo.ini``) as a one-item list, or the sequence folders of a
    benchmark root, sorted."""
    root = Path(source)
    if (root / "seqinfo.ini").is_file():
        return [root]
    found = sorted(p.parent for p in root.glob("*/seqinfo.ini"))
    if not found:
        raise FileNotFoundError(f"{root}: not a sequence folder and holds no <seq>/seqinfo.ini")
    return found


def detections_file(detections: str | os.PathLike, seq_name: str, many: bool) -> Path:
    """Where a sequence's detections are: the file itself, or ``<dir>/<seq>.txt`` or
    ``<dir>/<seq>/det/det.txt`` inside a folder."""
    path = Path(detections)
    if path.is_file():
        if many:
            raise ValueError(
                f"{path}: one detection file given for several sequences; "
                "pass a folder of <seq>.txt files"
            )
        return path
    for candidate in (path / f"{seq_name}.txt", path / seq_name / "det" / "det.txt"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{path}: no detections for {seq_name} ({seq_name}.txt or {seq_name}/det/det.txt)"
    )


def appearance_for(embedder, image: np.ndarray, dets: Detections):
    """The tracker's lazy ``embed(rows)`` for one frame: crops of only the rows it asks for."""
    return lambda rows: embedder.embed(image, dets.xyxy[rows])


def track_public_detections(
    folder: Path,
    det_path: Path,
    config: TrackerConfig | None = None,
    interpolate_gap: int = 0,
    smooth_sigma: float = 0.0,
    embedder=None,
) -> tuple[str, MotRows]:
    """Track one sequence from its detection file; returns (sequence name, result rows).

    Frames are read only when needed: camera-motion compensation, or appearance from
    ``embedder`` (anything with ``embed(frame, boxes)``).
    """
    info = read_seqinfo(folder)
    dets = read_detections(det_path)
    if dets.last_frame > info.length:
        raise ValueError(
            f"{det_path}: detections at frame {dets.last_frame}, beyond "
            f"seqLength={info.length} in {folder / 'seqinfo.ini'}"
        )
    config = config or TrackerConfig()
    tracker = Tracker(config, frame_rate=info.frame_rate, image_size=(info.width, info.height))
    if config.camera_motion or embedder is not None:
        per_frame = dict(detections_by_frame(dets, info.length))

        def step(index: int, image: np.ndarray) -> Tracks:
            d = per_frame[index]
            embed = None if embedder is None else appearance_for(embedder, image, d)
            return tracker.update(d, frame=image, frame_index=index, embed=embed)

        stream = ((index, step(index, image)) for index, image in open_source(folder))
    else:
        stream = track_detections(detections_by_frame(dets, info.length), tracker)
    rows = frames_to_rows(stream, source=str(det_path))
    if interpolate_gap > 0:
        rows = interpolate(rows, interpolate_gap, smooth_sigma)
    return info.name, rows
