"""How the tracker should use appearance, chosen so that no sequence flatters itself.

The tracker's appearance thresholds (``TrackerConfig``: stage 1's ``appearance_gate`` and
``appearance_veto``, stage 5's ``reid_cost``, ``reid_max_distance`` and ``reid_margin``) are
searched over a grid on every real sequence with ground truth and video (PETS09-S2L1,
TUD-Stadtmitte), from the same detections and embeddings: a detector and an embedder that
never saw either sequence. Leave one sequence out: the setting with the best mean IDF1 on the
other sequences is scored on the held-out one, beside the same detections tracked without
appearance. The setting best on all of them is printed last: what an embedder's sidecar should
carry (it is tuned on these very sequences, so it is no held-out figure).

Detections and embeddings of every detection are computed once and kept in ``--cache``
(``SEQ.npz``); the grid then costs only tracking and TrackEval.

    python benchmarks/appearance_folds.py --checkpoint runs/coco-levels.pt \
        --embedder heatrack/assets/models/embedder-int8.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np
from links_appearance import detections_and_embeddings

from heatrack.eval.mot import COMBINED, SequenceData, evaluate
from heatrack.inference import load_detector
from heatrack.io.mot import read_gt, read_seqinfo
from heatrack.models.reid import load_embedder
from heatrack.pipeline import frames_to_rows
from heatrack.run import tracker_config_for
from heatrack.tracking.tracker import Tracker, TrackerConfig
from heatrack.types import Detections

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "MOT15" / "train"
SEQUENCES = ("PETS09-S2L1", "TUD-Stadtmitte")
COLUMNS = ("HOTA", "AssA", "IDF1", "IDSW", "MOTA")
GRID = {
    "appearance_gate": (0.2, 0.264),
    "appearance_veto": (0.3, 0.33, 0.35, 0.37, 0.4, 1.0),
    "reid_cost": (0.0, 0.16, 0.2208),
    "reid_margin": (0.0, 0.05),
    "reid_max_distance": (1.0, 2.0),
}


def cached_frames(folder: Path, detector, embedder, cache: Path) -> list:
    """(frame index, Detections with embeddings of every row) per frame, from ``cache``
    when there, else computed and stored."""
    path = cache / f"{folder.name}.npz"
    if not path.exists():
        frames = detections_and_embeddings(folder, detector, embedder)
        arrays = {
            "index": np.concatenate([np.full(len(d), i) for i, d, _ in frames]),
            "xyxy": np.concatenate([d.xyxy for _, d, _ in frames]),
            "scores": np.concatenate([d.scores for _, d, _ in frames]),
            "emb": np.concatenate([e for _, _, e in frames]),
        }
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, **arrays)
        partial.replace(path)
    with np.load(path) as data:
        index, xyxy, scores, emb = (data[k] for k in ("index", "xyxy", "scores", "emb"))
    length = read_seqinfo(folder).length
    bounds = np.searchsorted(index, np.arange(1, length + 2))  # rows are in frame order
    return [
        (i, Detections(xyxy=xyxy[a:b], scores=scores[a:b], embeddings=emb[a:b]))
        for i, a, b in zip(range(1, length + 1), bounds[:-1], bounds[1:], strict=True)
    ]


def score(folder: Path, frames: list, config: TrackerConfig, appearance: bool) -> dict:
    info, gt = read_seqinfo(folder), read_gt(folder / "gt" / "gt.txt")
    tracker = Tracker(config, frame_rate=info.frame_rate, image_size=(info.width, info.height))
    # The embedder is asked only for the rows the tracker wants, as in `heatrack track`.
    per_frame = (
        (
            i,
            tracker.update(
                dataclasses.replace(d, embeddings=None),
                embed=d.embeddings.__getitem__ if appearance else None,
            ),
        )
        for i, d in frames
    )
    rows = frames_to_rows(per_frame)
    return evaluate([SequenceData(folder.name, info.length, gt, rows)])[COMBINED]


def cells(m: dict) -> str:
    return " | ".join(f"{m[c]:.2f}" if c != "IDSW" else str(int(m[c])) for c in COLUMNS)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--checkpoint", help="detector (default: the shipped one)")
    ap.add_argument("--embedder", help="embedder weights (default: the shipped one)")
    ap.add_argument("--sequences", nargs="+", default=list(SEQUENCES))
    ap.add_argument("--cache", type=Path, default=ROOT / "outputs" / "appearance_folds")
    ap.add_argument(
        "--grid",
        type=json.loads,
        default=GRID,
        help='JSON {"TrackerConfig field": [values], ...} (default: the grid above)',
    )
    args = ap.parse_args()
    detector = load_detector(args.checkpoint)
    embedder = load_embedder(args.embedder)
    base = tracker_config_for(detector, embedder)
    folders = [DATA / s for s in args.sequences]
    # One cache per (detector, embedder) pair: other models make other detections and vectors.
    models = (Path(args.checkpoint or "shipped").stem, Path(args.embedder or "shipped").stem)
    cache = args.cache / "+".join(models)
    frames = {f.name: cached_frames(f, detector, embedder, cache) for f in folders}

    names = list(args.grid)
    settings = [dict(zip(names, v, strict=True)) for v in itertools.product(*args.grid.values())]
    results: dict[str, list[dict]] = {}
    for f in folders:
        results[f.name] = [score(f, frames[f.name], dataclasses.replace(base, **s), True)
                           for s in settings]  # fmt: skip
    plain = {f.name: score(f, frames[f.name], base, False) for f in folders}

    def best(on: list[str]) -> int:
        return max(range(len(settings)), key=lambda i: np.mean([results[s][i]["IDF1"] for s in on]))

    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}; grid of {len(settings)} settings\n")
    header = "| held out | appearance | setting (chosen on the others) | "
    print(header + " | ".join(COLUMNS) + " |")
    print("|---|---|---|" + "---:|" * len(COLUMNS))
    for f in folders:
        others = [s for s in results if s != f.name] or [f.name]
        i = best(others)
        text = ", ".join(f"{k} {v}" for k, v in settings[i].items())
        print(f"| {f.name} | off | - | {cells(plain[f.name])} |")
        print(f"| {f.name} | on | {text} | {cells(results[f.name][i])} |")
    i = best(list(results))
    print("\nbest on all (tuned on these sequences):", settings[i])
    for f in folders:
        print(f"  {f.name}: {cells(results[f.name][i])}")
    base_i = min(
        range(len(settings)),
        key=lambda j: sum(abs(settings[j][k] - getattr(base, k)) for k in names),
    )
    print("current setting (nearest on the grid):", settings[base_i])
    for f in folders:
        print(f"  {f.name}: {cells(results[f.name][base_i])}")


if __name__ == "__main__":
    main()
