"""What appearance buys with and without the detector's links, stage by stage.

Streams a real sequence once through a detector (the shipped one unless ``--checkpoint``),
embeds every detection with an embedder (the shipped one unless ``--embedder``), then tracks
the same detections and embeddings with the links off and on, each with: no appearance,
appearance everywhere, appearance only in stage 5 (re-identifying long-lost tracks:
``appearance_gate`` 0), and only in stage 1 (``reid_cost`` 0). TrackEval scores every run.
The embedder is asked only for the rows the tracker wants, as in ``heatrack track``; the
precomputed rows are the same numbers.

    python benchmarks/links_appearance.py --sequence PETS09-S2L1
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from heatrack.eval.mot import COMBINED, SequenceData, evaluate
from heatrack.inference import load_detector
from heatrack.io.mot import read_gt, read_seqinfo
from heatrack.io.sources import MotSequenceSource
from heatrack.models.reid import load_embedder
from heatrack.pipeline import frames_to_rows
from heatrack.run import tracker_config_for
from heatrack.tracking.tracker import Tracker

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "MOT15" / "train"
COLUMNS = ("HOTA", "AssA", "IDF1", "IDSW")


def detections_and_embeddings(folder: Path, detector, embedder) -> list:
    """(frame index, Detections, (N, D) embeddings of every detection) for every frame."""
    images: dict[int, np.ndarray] = {}

    def remember():
        for index, image in MotSequenceSource(folder):
            images[index] = image
            yield index, image

    out = []
    for index, dets, _ in detector.stream(remember()):
        image = images.pop(index)
        out.append((index, dets, embedder.embed(image, dets.xyxy)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sequence", default="PETS09-S2L1")
    ap.add_argument("--checkpoint", help="a linking detector (default: the shipped one)")
    ap.add_argument("--embedder", help="embedder weights (default: the shipped one)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    folder = DATA / args.sequence
    info, gt = read_seqinfo(folder), read_gt(folder / "gt" / "gt.txt")
    detector = load_detector(args.checkpoint)
    if "tracker" not in detector.meta:  # a training checkpoint: the shipped thresholds
        detector.meta = {**detector.meta, "tracker": load_detector().meta["tracker"]}
    embedder = load_embedder(args.embedder)
    base = tracker_config_for(detector, embedder)
    frames = detections_and_embeddings(folder, detector, embedder)
    print(f"{time.strftime('%Y-%m-%d')}; {args.sequence}, {len(frames)} frames\n")
    print("| links | appearance | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---:|" * len(COLUMNS))
    appearances = {
        "none": None,
        "everywhere": {},
        "stage 5 only (re-identification)": {"appearance_gate": 0.0},
        "stage 1 only": {"reid_cost": 0.0},
    }
    for link_weight in (0.0, base.link_weight):
        for label, changes in appearances.items():
            config = dataclasses.replace(base, link_weight=link_weight, **(changes or {}))
            tracker = Tracker(
                config, frame_rate=info.frame_rate, image_size=(info.width, info.height)
            )
            lazy = changes is not None  # the rows the tracker asks for, as in `heatrack track`
            per_frame = (
                (i, tracker.update(d, frame_index=i, embed=e.__getitem__ if lazy else None))
                for i, d, e in frames
            )
            rows = frames_to_rows(per_frame)
            m = evaluate([SequenceData(args.sequence, info.length, gt, rows)])[COMBINED]
            cells = [f"{m[c]:.2f}" if c != "IDSW" else str(int(m[c])) for c in COLUMNS]
            links = "on" if link_weight else "off"
            print(f"| {links} | {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
