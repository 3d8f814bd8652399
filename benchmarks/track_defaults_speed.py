"""Update speed of the tracker's defaults against the defaults before 2026-12-06, one run.

What the lift-only score adaptation and the low-score births of today's ``TrackerConfig``
cost per frame: both configs track every sequence of each regime (``benchmarks/regimes.py``)
in turn, ``--repeat`` times, interleaved so that a busy machine slows both alike; the figure
is frames per second of time inside ``update`` (``track_peers.run_tracker``), best run. No
peers here: their speed against heatrack's is ``track_regimes.py`` / ``track_peers.py``.

    python benchmarks/track_defaults_speed.py --regimes mot15 yolox mot17-shifted-low
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from regimes import NAMES, load_regime  # noqa: E402
from track_peers import Heatrack, run_tracker  # noqa: E402
from track_regimes import CENTRE  # noqa: E402

from heatrack.tracking.tracker import TrackerConfig  # noqa: E402


def update_fps(config: TrackerConfig, sequences) -> float:
    seconds, frames = 0.0, 0
    for _, _, dets, info in sequences:
        _, spent, n = run_tracker(Heatrack(config), dets, info)
        seconds, frames = seconds + spent, frames + n
    return frames / seconds


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--regimes", nargs="+", default=["mot15", "yolox", "mot17-shifted-low"],
                    choices=NAMES)  # fmt: skip
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("| regime | defaults before 2026-12-06 | today's defaults | ratio |")
    print("|---|---:|---:|---:|")
    for regime in args.regimes:
        sequences = load_regime(regime)
        old, new = [], []
        for _ in range(args.repeat):
            old.append(update_fps(CENTRE, sequences))
            new.append(update_fps(TrackerConfig(), sequences))
        print(f"| {regime} | {max(old):.0f} | {max(new):.0f} | {max(new) / max(old):.2f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
