"""What each part of heatrack's tracker buys: TrackerConfig fields changed one at a time.

Same detection sets and scoring as benchmarks/track_peers.py (accuracy only; no timing).

    python benchmarks/track_ablation.py
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from regimes import load_regime  # noqa: E402
from track_peers import Heatrack, run_tracker  # noqa: E402

from heatrack.eval.mot import COMBINED, SequenceData, evaluate  # noqa: E402
from heatrack.tracking.tracker import TrackerConfig  # noqa: E402

VARIANTS = [
    ("defaults", {}),
    ("no coasting (`coast_frames: 0`)", {"coast_frames": 0}),
    ("no observation-centric re-update (`reupdate_points: 1`)", {"reupdate_points": 1}),
    ("recovery stage on (`recovery_match_cost: 0.5`)", {"recovery_match_cost": 0.5}),
    ("Distance-IoU in stage 1 (`distance_iou: true`)", {"distance_iou": True}),
    ("score-scaled Kalman noise (`score_scaled_noise: true`)", {"score_scaled_noise": True}),
    ("no score fusion (`fuse_score: false`)", {"fuse_score": False}),
    ("detection boxes out (`output_kalman_box: false`)", {"output_kalman_box": False}),
    ("shorter memory (`max_lost_seconds: 1.0`)", {"max_lost_seconds": 1.0}),
]


def main() -> None:
    sets = {name: load_regime(name) for name in ("mot15", "mot17-noisy")}
    header = [
        "change from the defaults",
        "mot15 HOTA",
        "mot15 IDF1",
        "mot17-noisy HOTA",
        "mot17-noisy IDF1",
    ]
    print("| " + " | ".join(header) + " |")
    print("|---|---:|---:|---:|---:|")
    for label, change in VARIANTS:
        config = dataclasses.replace(TrackerConfig(), **change)
        cells = []
        for seqs in sets.values():
            results = []
            for seq, gt, dets, info in seqs:
                rows, _, _ = run_tracker(Heatrack(config), dets, info)
                results.append(SequenceData(seq, info.length, gt, rows))
            m = evaluate(results)[COMBINED]
            cells += [f"{m['HOTA']:.2f}", f"{m['IDF1']:.2f}"]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
