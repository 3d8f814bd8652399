"""Scale ranges and rank of the second detector pass, chosen leave-one-source-out.

A second, smaller pass (``InferenceConfig.extra_long_sides``) finds people too large for the
first; its boxes of small people are coarser than the first pass's and duplicate them.
``InferenceConfig.extra_min_height`` keeps, from the extra pass, only people at least that
tall in its own input, and ``InferenceConfig.extra_score_scale`` multiplies its scores (below 1
the first pass wins where both find a person). This script picks the pair (height, scale)
without looking at the source it is scored on:

  1. every fold model (``--folds DIR``: ``DIR/<source>/last.pt`` never saw <source>) runs
     each pass alone on every source (``detector_sources.py``'s frames); boxes are cached in
     ``--cache`` per model, source and pass (the passes are decoded independently, so the
     merge below is exactly what ``Detector.stream`` does with both passes);
  2. for each candidate pair, the passes are merged (``keep_tall``, ``scale_scores``,
     ``merge_detections``) and AP50 computed on every source;
  3. for the fold of source S, the pair is the one with the best mean AP50 over the *other*
     five sources (those its model trained on); its AP50 on S is the held-out figure.

The pair for the shipped default is the one with the best mean held-out AP50 over all six
folds (the shipped model trained on every source, so none is held out from that choice).

    python benchmarks/detector_scale_ranges.py --folds runs/sources-distill \
        --json outputs/scale-ranges.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detector_ap import rows_of  # noqa: E402
from detector_sources import (  # noqa: E402
    SOURCES,
    _offsets,
    _pool,
    cached,
    frames_of,
    heatrack_boxes,
)

from heatrack.eval.detection import evaluate_detections  # noqa: E402
from heatrack.inference import Detector, InferenceConfig, network_size  # noqa: E402
from heatrack.models.decode import (  # noqa: E402
    DecodeConfig,
    keep_tall,
    merge_detections,
    scale_scores,
)
from heatrack.types import Detections  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Candidate heights (pixels in the extra pass's input); 0 keeps every box (plain two passes),
#: ``OFF`` none (the first pass alone).
OFF = 10_000.0
HEIGHTS = (0, 32, 64, 96, 128, 192, OFF)
SCALES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


def load_boxes(path: Path, make) -> dict[int, Detections]:
    """Cached ``heatrack_boxes`` of one pass as {frame: Detections}."""
    rows = cached(path, make)
    xyxy = np.concatenate([rows.xywh[:, :2], rows.xywh[:, :2] + rows.xywh[:, 2:]], axis=1)
    out = {}
    for f in np.unique(rows.frames):
        m = rows.frames == f
        out[int(f)] = Detections(xyxy=xyxy[m], scores=rows.conf[m])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--folds", type=Path, required=True)
    ap.add_argument("--sources", nargs="+", choices=sorted(SOURCES), default=list(SOURCES))
    ap.add_argument("--models", nargs="+", choices=sorted(SOURCES),
                    help="only cache these folds' boxes (while other folds still train); the "
                    "table needs every fold")  # fmt: skip
    ap.add_argument("--long-side", type=int, default=512)
    ap.add_argument("--extra-long-side", type=int, default=320)
    ap.add_argument("--heights", type=float, nargs="+", default=HEIGHTS)
    ap.add_argument("--scales", type=float, nargs="+", default=SCALES)
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--pets-step", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=ROOT / "outputs" / "scale-ranges")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    decode = DecodeConfig(score_threshold=0.01, top_k=1000)  # as detector_sources.py
    sides = (args.long_side, args.extra_long_side)
    pairs = [(h, a) for h in args.heights for a in (args.scales if h != OFF else (1.0,))]
    # ap[model][source][(height, scale)]
    table: dict[str, dict[str, dict[tuple[float, float], float]]] = {}
    for model in args.models or args.sources:
        weights = args.folds / model / "last.pt"
        detectors = {
            side: Detector.from_checkpoint(weights, InferenceConfig(decode=decode).sized(side))
            for side in sides
        }
        table[model] = {}
        scored_path = args.cache / args.folds.name / model / "ap50.json"
        scored = json.loads(scored_path.read_text()) if scored_path.is_file() else {}
        for source in args.sources:
            known = scored.get(source, {})
            if all(_label(p) in known for p in pairs):  # every pair scored before
                table[model][source] = {p: known[_label(p)] for p in pairs}
                continue
            step = args.pets_step if source == "PETS09-S2L1" else args.step
            parts = []
            for part, gt, evaluated, every in frames_of(source, step):
                found = {}
                for side, det in detectors.items():
                    path = args.cache / args.folds.name / model / f"{part}-{step}-{side}.npz"
                    found[side] = load_boxes(
                        path, lambda d=det, ev=evaluated, e=every: heatrack_boxes(d, ev, e)
                    )
                # The extra pass's input scale of every frame (stills differ in size).
                sy = {
                    i: network_size(im.shape[1], im.shape[0], args.extra_long_side)[3]
                    for i, im in evaluated
                }  # fmt: skip
                parts.append((part, gt, [i for i, _ in evaluated], found, sy))
            table[model][source] = {}
            for h, a in pairs:
                dets, gts = [], []
                for _, gt, done, found, sy in parts:
                    merged = []
                    for i in done:
                        main_, extra = found[sides[0]].get(i), found[sides[1]].get(i)
                        extra = extra and scale_scores(keep_tall(extra, h * sy[i]), a)
                        passes = [d for d in (main_, extra) if d]
                        if passes:
                            m = merge_detections(passes, decode)
                            merged.append((i, m.xywh, m.scores))
                    dets.append((rows_of(merged), done))
                    gts.append((gt, done))
                pooled = [(g, None, d, None) for g, d in gts]
                table[model][source][(h, a)] = evaluate_detections(
                    _pool(gts), _pool(dets), frames=sorted(_offsets(pooled))
                )["AP50"]
            scored[source] = {_label(p): v for p, v in table[model][source].items()}
            scored_path.write_text(json.dumps(scored, indent=1))
            best = max(table[model][source].items(), key=lambda kv: kv[1])
            print(model, source, "both passes", round(table[model][source][(0, 1.0)], 3),
                  "first alone", round(table[model][source][(OFF, 1.0)], 3),
                  "best", best[0], round(best[1], 3), flush=True)  # fmt: skip
    if not args.models:
        report(args, table, pairs)


def _label(pair: tuple[float, float]) -> str:
    h, a = pair
    return "first pass alone" if h == OFF else f"h={h:g} x{a:g}"


def report(args, table, pairs) -> None:
    rows = []
    for source in args.sources:
        others = [s for s in args.sources if s != source]
        own = {p: float(np.mean([table[source][s][p] for s in others])) for p in pairs}
        chosen = max(pairs, key=lambda p: (own[p], -p[0], p[1]))
        rows.append({
            "source": source, "chosen": chosen,
            "held_out": {p: table[source][source][p] for p in pairs},
            "trained_mean": own,
        })  # fmt: skip
    mean_by = {p: float(np.mean([r["held_out"][p] for r in rows])) for p in pairs}
    both, alone = (0, 1.0), (OFF, 1.0)
    print("\n| held-out source | chosen on the other five | AP50 at it | both passes | "
          "first pass alone |")  # fmt: skip
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['source']} | {_label(r['chosen'])} | {r['held_out'][r['chosen']]:.3f} | "
              f"{r['held_out'][both]:.3f} | {r['held_out'][alone]:.3f} |")  # fmt: skip
    protocol = float(np.mean([r["held_out"][r["chosen"]] for r in rows]))
    print(f"| mean | | {protocol:.3f} | {mean_by[both]:.3f} | {mean_by[alone]:.3f} |")
    shipped = max(pairs, key=lambda p: (mean_by[p], -p[0], p[1]))
    print(f"pair for the shipped default (best mean held-out AP50): {_label(shipped)}, "
          f"mean {mean_by[shipped]:.3f}")  # fmt: skip
    if args.json:
        key = _label
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "folds": str(args.folds), "sides": [args.long_side, args.extra_long_side],
            "rows": [{**r, "chosen": key(r["chosen"]),
                      "held_out": {key(p): v for p, v in r["held_out"].items()},
                      "trained_mean": {key(p): v for p, v in r["trained_mean"].items()}}
                     for r in rows],
            "mean_by_pair": {key(p): v for p, v in mean_by.items()},
            "protocol_mean": protocol, "shipped": key(shipped)}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
