"""End to end on real video: heatrack against OpenCV HOG + ByteTrack, in one run.

For PETS09-S2L1 and TUD-Stadtmitte (the real videos with ground truth in ../shared/data) every
entry starts from the decoded frames:

  heatrack            shipped detector + shipped embedder + tracker (``heatrack.track``)
  heatrack, no appearance   the same without the embedder
  HOG + ByteTrack     OpenCV's HOG people detector (benchmarks/hog_baseline.py, every frame)
                      tracked by boxmot's ByteTrack with its defaults
  HOG + heatrack tracker    the same HOG boxes through heatrack's tracker

HOG scores are SVM margins (0 to about 3); trackers want confidences in [0, 1]. Each HOG entry
is run with score = min(margin / s, 1) for every s in ``--hog-scales`` and the best s by
combined HOTA is kept (so the baseline is tuned on these very sequences, in its favour).

and, as references that need no detector of ours, ByteTrack and heatrack's tracker on the
MOT15 public Faster R-CNN detections and on YOLOX-nano's (``../shared/models``, 416 letterbox,
person class): YOLOX-nano + ByteTrack is what users of the field run. TrackEval scores
everything (``heatrack.eval.mot``).
HOG is slow (about 0.37 s per PETS frame); the HOG and YOLOX-nano detections are kept in ``--cache``
(``benchmarks/regimes.py``) and reused by later runs.

    .venv/bin/pip install --no-deps -r benchmarks/requirements.txt   # ByteTrack (boxmot)
    python benchmarks/track_e2e.py --json outputs/track_e2e.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from regimes import detector_output  # noqa: E402
from track_peers import BoxmotPeer, Heatrack, run_tracker  # noqa: E402

from heatrack.eval.mot import COMBINED, SequenceData, evaluate  # noqa: E402
from heatrack.inference import InferenceConfig, load_detector  # noqa: E402
from heatrack.io.mot import (  # noqa: E402
    MotRows,
    read_detections,
    read_gt,
    read_seqinfo,  # noqa: E402
)
from heatrack.io.sources import MotSequenceSource  # noqa: E402
from heatrack.models.reid import load_embedder  # noqa: E402
from heatrack.run import track, tracker_config_for  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "MOT15" / "train"
SEQUENCES = ("PETS09-S2L1", "TUD-Stadtmitte")
YOLOX = DATA.parents[2] / "models" / "yolox_nano_coco.onnx"
COLUMNS = ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW")


def heatrack_rows(
    folder: Path, appearance: bool, checkpoint=None, embedder_weights=None, extra_long_sides=None
) -> tuple[MotRows, float]:
    """Results of the shipped models (or the detector ``checkpoint`` and the embedder
    ``embedder_weights``) on a sequence, and frames per second end to end."""
    detector = load_detector(checkpoint, InferenceConfig().sized(None, extra_long_sides))
    if checkpoint is not None and "tracker" not in detector.meta:  # training checkpoints
        detector.meta = {**detector.meta, "tracker": load_detector().meta["tracker"]}
    embedder = load_embedder(embedder_weights) if appearance else None
    config = tracker_config_for(detector, embedder)
    frames, ids, boxes, scores = [], [], [], []
    start = time.perf_counter()
    source = MotSequenceSource(folder)
    n = 0
    for index, tracks in track(source, detector, embedder, config=config, appearance=appearance):
        n += 1
        frames.append(np.full(len(tracks), index))
        ids.append(tracks.ids)
        boxes.append(tracks.xywh)
        scores.append(tracks.scores)
    fps = n / (time.perf_counter() - start)
    frames, ids = np.concatenate(frames), np.concatenate(ids)
    boxes, scores = np.concatenate(boxes), np.concatenate(scores)
    m = len(frames)
    rows = MotRows(frames, ids, boxes, scores, np.ones(m, np.int64), np.ones(m), "heatrack")
    return rows, fps


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sequences", nargs="+", default=list(SEQUENCES))
    ap.add_argument(
        "--cache", type=Path, default=Path("outputs/regimes"),
        help="HOG and YOLOX-nano detections are kept here (benchmarks/regimes.py)",
    )  # fmt: skip
    ap.add_argument(
        "--checkpoint",
        help="a detector checkpoint instead of the shipped one (e.g. a fold that never saw "
        "the sequence); the shipped detector's tracker thresholds are used",
    )
    ap.add_argument(
        "--held-out",
        action="append",
        default=[],
        metavar="SEQ=DETECTOR,EMBEDDER",
        help="also track SEQ with a detector and an embedder that never saw it (fold "
        "checkpoints), with and without appearance",
    )
    ap.add_argument("--hog-scales", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    ap.add_argument("--no-hog", action="store_true", help="leave the (slow) HOG entries out")
    ap.add_argument(
        "--no-shipped",
        action="store_true",
        help="leave out the shipped models' entries (which trained on these sequences)",
    )
    ap.add_argument("--extra-long-sides", type=int, nargs="*", default=None, metavar="N",
                    help="detector passes for every frame (none given: one; default: "
                    "InferenceConfig's)")  # fmt: skip
    ap.add_argument("--json", type=Path, help="write all numbers here")
    args = ap.parse_args()
    held_out = {}
    for item in args.held_out:
        seq, _, models = item.partition("=")
        if models.count(",") != 1:
            ap.error(f"--held-out {item!r}: expected SEQ=DETECTOR,EMBEDDER")
        held_out[seq] = models.split(",")
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("boxmot").setLevel(logging.ERROR)

    entries: dict[str, list[SequenceData]] = {}
    speed: dict[str, dict[str, float]] = {}
    for seq in args.sequences:
        folder = DATA / seq
        info = read_seqinfo(folder)
        gt = read_gt(folder / "gt" / "gt.txt")

        def add(label, rows, seq=seq, info=info, gt=gt):
            entries.setdefault(label, []).append(SequenceData(seq, info.length, gt, rows))

        runs = [] if args.no_shipped else [
            (True, "heatrack", args.checkpoint, None),
            (False, "heatrack, no appearance", args.checkpoint, None),
        ]  # fmt: skip
        if seq in held_out:
            detector, embedder = held_out[seq]
            runs += [
                (True, "heatrack, held-out models", detector, embedder),
                (False, "heatrack, held-out detector, no appearance", detector, None),
            ]
        for appearance, label, detector, embedder in runs:
            rows, fps = heatrack_rows(folder, appearance, detector, embedder, args.extra_long_sides)
            add(label, rows)
            speed.setdefault(label, {})[seq] = fps
            print(f"{seq}: {label} done at {fps:.1f} FPS", file=sys.stderr, flush=True)
        sets = []
        if not args.no_hog:
            hog = detector_output("hog", folder, args.cache)
            sets = [
                (f"HOG /{s:g}", dataclasses.replace(hog, conf=np.minimum(hog.conf / s, 1.0)))
                for s in args.hog_scales
            ]
        sets.append(("public FRCNN", read_detections(folder / "det" / "det.txt")))
        if YOLOX.is_file():
            sets.append(("YOLOX-nano", detector_output("yolox", folder, args.cache)))
        for source, dets in sets:
            for adapter in (BoxmotPeer("bytetrack"), Heatrack(label="heatrack tracker")):
                add(f"{source} + {adapter.name}", run_tracker(adapter, dets, info)[0])

    table = {label: evaluate(data) for label, data in entries.items()}
    for tracker in ("ByteTrack", "heatrack tracker"):  # keep the best HOG score scale
        labels = [k for k in table if k.startswith("HOG /") and k.endswith(tracker)]
        if not labels:
            continue
        best = max(labels, key=lambda k: table[k][COMBINED]["HOTA"])
        for k in labels:
            if k != best:
                del table[k]
    header = "| detections + tracker | sequence | " + " | ".join(COLUMNS) + " | FPS |"
    lines = [
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores",
        "",
        header,
        "|---|---|" + "---:|" * (len(COLUMNS) + 1),
    ]
    for label, metrics in table.items():
        for seq in [s for s in args.sequences if s in metrics]:
            m = metrics[seq]
            cells = [f"{m[c]:.2f}" if c != "IDSW" else str(int(m[c])) for c in COLUMNS]
            fps = speed.get(label, {}).get(seq)
            lines.append(
                f"| {label} | {seq} | " + " | ".join(cells) + f" | {fps:.1f} |"
                if fps
                else f"| {label} | {seq} | " + " | ".join(cells) + " | - |"
            )
    print("\n".join(lines))
    if args.json:
        out = {"speed": speed, "metrics": {k: v for k, v in table.items()}}
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
