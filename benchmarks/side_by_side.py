"""One frame of each unlabelled street video: heatrack's boxes beside YOLOX-nano's (issue 16).

For every video in ``../shared/data/videos/extra`` (none of them labelled, none trained on),
the frame at ``--at`` of its length is drawn twice: left, the heatrack detector's boxes (its
T-frame window ending there) that would start tracks (score >= the ``high_score`` of the
tracker config shipped with it); right, YOLOX-nano's person boxes (416 letterbox) at 0.6,
the ``track_thresh`` of boxmot's ByteTrack defaults, as YOLOX + ByteTrack users run it (the
table also counts YOLOX's boxes >= 0.3). Each half is titled with its box count. Pictures go
to ``--out`` (JPEG, 960 px wide).

    python benchmarks/side_by_side.py --out docs/images/side-by-side
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from heatrack.inference import load_detector
from heatrack.io.sources import open_source
from heatrack.models.yolox import YoloxPeople
from heatrack.run import tracker_config_for

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos" / "extra"
YOLOX = ROOT.parent / "shared" / "models" / "yolox_nano_coco.onnx"
YOLOX_THRESHOLD = 0.6


def draw(image: np.ndarray, xyxy: np.ndarray, colour, title: str) -> np.ndarray:
    out = image.copy()
    thick = max(2, round(image.shape[1] / 400))
    for x1, y1, x2, y2 in np.asarray(xyxy).round().astype(int):
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
    scale = image.shape[1] / 640
    cv2.rectangle(out, (0, 0), (image.shape[1], int(34 * scale)), (0, 0, 0), -1)
    cv2.putText(out, title, (int(8 * scale), int(25 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                0.8 * scale, (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--videos", type=Path, nargs="+", help="default: every video in extra/")
    ap.add_argument("--at", type=float, default=0.5, help="where in each video, 0-1")
    ap.add_argument("--checkpoint", help="a detector instead of the shipped one")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "side-by-side")
    ap.add_argument("--width", type=int, default=960)
    args = ap.parse_args()
    videos = args.videos or sorted(p for p in VIDEOS.iterdir() if p.suffix in (".mp4", ".avi"))
    detector = load_detector(args.checkpoint)
    shipped = load_detector() if "tracker" not in detector.meta else detector
    high = tracker_config_for(shipped, None).high_score
    yolox = YoloxPeople(YOLOX, score_threshold=0.3)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for video in videos:
        source = open_source(video)
        target = max(1, int(source.length * args.at)) if source.length else 1
        start = max(1, target - detector.frames + 1)  # the window that ends at the target
        frames = list(source.frames(start, target + detector.frames - 1))
        image = next(img for i, img in frames if i == target)
        ours = next(d for i, d, _ in detector.stream(frames) if i == target)
        ours = ours.xyxy[ours.scores >= high]
        found = yolox.detect(image)
        theirs = found.xyxy[found.scores >= YOLOX_THRESHOLD]
        h, w = image.shape[:2]
        left = draw(image, ours, (0, 200, 0), f"heatrack: {len(ours)}")
        right = draw(image, theirs, (0, 140, 255), f"YOLOX-nano: {len(theirs)}")
        pair = np.concatenate([left, right], axis=1)
        scale = args.width / pair.shape[1]
        pair = cv2.resize(pair, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        path = args.out / f"{video.stem}.jpg"
        cv2.imwrite(str(path), pair, [cv2.IMWRITE_JPEG_QUALITY, 80])
        rows.append((video.stem, f"{w}x{h}", target, len(ours), len(theirs), len(found), path))
        print(f"{video.stem}: heatrack {len(ours)}, YOLOX-nano {len(theirs)}", file=sys.stderr)
    print("| video | size | frame | heatrack | YOLOX-nano >= 0.6 | (>= 0.3) | picture |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name, size, frame, a, b, c, path in rows:
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"| {name} | {size} | {frame} | {a} | {b} | {c} | ![{name}]({rel}) |")


if __name__ == "__main__":
    main()
