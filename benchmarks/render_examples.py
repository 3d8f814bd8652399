"""Pictures for BENCHMARKS.md: tracked frames and heatmaps from the shipped models.

    python benchmarks/render_examples.py --video ../shared/data/videos/london-crossing.mp4 \
        --frames 90 150 --out docs/images

With ``--checkpoint`` a detector with the displacement head draws each person's motion
arrow too (``--suffix`` tells the pictures apart).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from heatrack.inference import load_detector
from heatrack.io.render import TrackRenderer, heatmap_overlay
from heatrack.io.sources import open_source
from heatrack.models.reid import load_embedder
from heatrack.run import track_frames, tracker_config_for
from heatrack.tracking.tracker import Tracker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--video", required=True)
    ap.add_argument("--frames", type=int, nargs="+", required=True)
    ap.add_argument("--out", type=Path, default=Path("docs/images"))
    ap.add_argument("--checkpoint", help="a detector instead of the shipped one")
    ap.add_argument("--suffix", default="", help="appended to the picture names")
    args = ap.parse_args()
    detector, embedder = load_detector(args.checkpoint), load_embedder()
    if "tracker" not in detector.meta:  # a training checkpoint: the shipped thresholds
        detector.meta = {**detector.meta, "tracker": load_detector().meta["tracker"]}
    config = tracker_config_for(detector, embedder)
    source = open_source(args.video)
    tracker = Tracker(config, frame_rate=source.fps, image_size=source.size)
    painter = TrackRenderer()
    last = max(args.frames)
    frames = ((i, im) for i, im in source if i <= last + detector.frames)
    args.out.mkdir(parents=True, exist_ok=True)
    for item in track_frames(frames, detector, tracker, embedder, keep_maps=True):
        picture = painter.draw(item.image, item.index, item.tracks, None, item.detections)
        if item.index in args.frames:
            stem = f"{source.name}-{item.index:04d}{args.suffix}"
            cv2.imwrite(str(args.out / f"{stem}-tracks.jpg"), picture)
            heat = heatmap_overlay(item.image, item.heatmap, item.index, item.detections)
            cv2.imwrite(str(args.out / f"{stem}-heatmap.jpg"), heat)
            print(args.out / f"{stem}-tracks.jpg", args.out / f"{stem}-heatmap.jpg")


if __name__ == "__main__":
    main()
