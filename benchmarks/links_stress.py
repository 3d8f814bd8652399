"""Occlusion stress: dense synthetic crossings, tracked with and without the detector's links.

Synthetic scenes (``heatrack.data.synthetic``) with many people walking both ways across a
pillar and each other; detections are the people at least 30 % visible, carrying the
displacement a trained head is taught to predict (``detections_with_displacement``, Gaussian
noise of 3 % of the box height). The same detections go through heatrack's tracker without
links (``link_weight`` 0: IoU, motion) and with them (the default weight), and through the
linker alone given zero vectors (nearest-centre links). TrackEval scores all of them.

    python benchmarks/links_stress.py --seeds 0 1 2 3
    python benchmarks/links_stress.py --ambiguity 0.5 0.8 1.0   # how LinkConfig's was picked
"""

from __future__ import annotations

import argparse
import time

from heatrack.data.noise import detections_with_displacement
from heatrack.data.synthetic import SyntheticConfig, render
from heatrack.eval.mot import COMBINED, SequenceData, evaluate
from heatrack.io.mot import MotRows
from heatrack.pipeline import frames_to_rows
from heatrack.tracking.links import LinkConfig, relink
from heatrack.tracking.tracker import Tracker, TrackerConfig

#: (label, speed range px/frame, fps, people)
SCENES = [
    ("fast, 5 fps", (6.0, 12.0), 5.0, 14),
    ("slow, 10 fps, crowded", (2.0, 4.0), 10.0, 20),
]
COLUMNS = ("HOTA", "DetA", "AssA", "IDF1", "IDSW")


def run(dets, weight: float, fps: float, nearest: bool = False, ambiguity=None) -> MotRows:
    tracker = Tracker(TrackerConfig(link_weight=weight), frame_rate=fps)
    config = LinkConfig() if ambiguity is None else LinkConfig(ambiguity=ambiguity)
    linked = relink(dets, config, blind=nearest)
    return frames_to_rows((f, tracker.update(d, frame_index=f)) for f, d in linked)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--noise", type=float, default=0.03)
    ap.add_argument(
        "--ambiguity",
        type=float,
        nargs="+",
        default=[],
        help="also track with links under each of these LinkConfig.ambiguity margins",
    )
    args = ap.parse_args()
    weight = TrackerConfig().link_weight
    print(f"{time.strftime('%Y-%m-%d')}; seeds {args.seeds}, 100 frames each, 480x240\n")
    print("| scene | tracking | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---:|" * len(COLUMNS))
    for label, speed, fps, people in SCENES:
        data = []
        for seed in args.seeds:
            cfg = SyntheticConfig(
                length=100, num_people=people, speed_range=speed, fps=fps, seed=seed, width=480
            )
            seq = render(cfg)
            dets = detections_with_displacement(seq.gt, cfg.length, args.noise, 0.3, seed)
            data.append((seq, dets))
        variants = {
            "tracker alone": dict(weight=0.0),
            f"tracker + links (weight {weight:g})": dict(weight=weight),
            "nearest-centre links": dict(weight=weight, nearest=True),
            **{
                f"tracker + links, ambiguity {a:g}": dict(weight=weight, ambiguity=a)
                for a in args.ambiguity
            },
        }
        for name, options in variants.items():
            results = [
                SequenceData(f"s{k}", 100, seq.gt, run(dets, fps=fps, **options))
                for k, (seq, dets) in enumerate(data)
            ]
            m = evaluate(results)[COMBINED]
            cells = [f"{m[c]:.1f}" if c != "IDSW" else str(int(m[c])) for c in COLUMNS]
            print(f"| {label} | {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
