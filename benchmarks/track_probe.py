"""Tracker settings probed on detection regimes, per sequence (issue 18).

Scores the ``TrackerConfig`` defaults with each ``--set`` override (a JSON object of fields),
and optionally boxmot / norfair / motpy peers, on the regimes of ``benchmarks/regimes.py``:
TrackEval HOTA / IDF1 per sequence and combined. A probe sees the regimes it is scored on, so
its figures explain (which sequences a setting helps) and are never held out; the
leave-one-regime-out choice is ``track_regimes.py``'s.

    python benchmarks/track_probe.py --regimes yolox mot15 \\
        --set '{}' --set '{"match_cost": 0.9}' --set '{"gate_fps_power": 1.0}' --peer ByteTrack
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from regimes import NAMES, load_regime  # noqa: E402
from track_peers import Heatrack, peers, track_regime  # noqa: E402

from heatrack.eval.mot import COMBINED  # noqa: E402
from heatrack.tracking.tracker import TrackerConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--regimes", nargs="+", choices=NAMES, required=True)
    ap.add_argument("--set", action="append", default=[], metavar="JSON",
                    help="TrackerConfig fields over the defaults (a JSON object)")  # fmt: skip
    ap.add_argument("--peer", action="append", default=[], help="a peer by name (ByteTrack ...)")
    ap.add_argument("--fold-detector", action="append", default=[], metavar="SEQ=CHECKPOINT")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("boxmot").setLevel(logging.ERROR)
    trackers = [
        (s, Heatrack(dataclasses.replace(TrackerConfig(), **json.loads(s))))
        for s in args.set or ["{}"]
    ]
    by_name = {p.name: p for p in peers()} if args.peer else {}
    trackers += [(name, by_name[name]) for name in args.peer]
    folds = dict(item.split("=", 1) for item in args.fold_detector)
    for regime in args.regimes:
        seqs = load_regime(regime, folds=folds)
        for label, tracker in trackers:
            metrics, _, _ = track_regime(tracker, seqs)
            parts = [f"{k} {v['HOTA']:.1f}/{v['IDF1']:.1f}" for k, v in metrics.items()
                     if k != COMBINED]  # fmt: skip
            c = metrics[COMBINED]
            print(f"{regime} | {label} | HOTA {c['HOTA']:.2f} IDF1 {c['IDF1']:.2f} | "
                  + ", ".join(parts), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
