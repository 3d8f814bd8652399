"""The detector's input size and passes as a rule of the frame's size, chosen leave-one-source-out.

A 1080p frame holds people too small for a 512 px input, and its decoding leaves time for a
larger one; a 640x480 frame does not (issue 16's speed bars: 25 FPS on 640x360 to 640x480,
15 FPS on 1080p). A *rule* gives the passes (long sides, merged by one NMS as
``Detector.stream`` merges ``extra_long_sides``) by the frame's longer side:

    512+320              every frame: 512 px, plus a 320 px pass
    512+320/960:640+320  frames below 960 px: 512 + 320; from 960 px: 640 + 320

The choice cannot see the source it is scored on:

  1. every fold model (``--folds DIR``: ``DIR/<source>/last.pt`` never saw <source>) runs
     each long side alone on every source (``detector_sources.py``'s frames); boxes are cached
     in ``--cache`` per model, source and side (the layout of ``detector_scale_ranges.py``,
     whose caches serve here too);
  2. every candidate rule is scored (AP50) on every source by merging the cached passes;
  3. for the fold of source S, the rule is chosen on the other five sources by issue 16's
     own bar: among the candidates at least YOLOX-nano's AP50 (416 letterbox, scored on the
     same frames) on every one of them, the best mean; if none is, the least bad worst
     margin. Ties (rules that differ only on S's frames) go to the cheaper rule (fewer input
     pixels on a 640x480 and a 1080p frame), then to the lower large-frame bound. Its AP50
     on S is the held-out figure.

Candidates (``RULES``) are the rules that keep the speed bars; ``REFERENCE`` rules are scored
beside them. The rule for the shipped default is the same choice made on the six held-out
figures.

    python benchmarks/detector_input_rules.py --folds runs/sources-distill \
        --json outputs/input-rules.json
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
from detector_scale_ranges import load_boxes  # noqa: E402
from detector_sources import (  # noqa: E402
    SOURCES,
    YOLOX,
    _offsets,
    _pool,
    cached,
    frames_of,
    heatrack_boxes,
)

from heatrack.eval.detection import evaluate_detections  # noqa: E402
from heatrack.inference import Detector, InferenceConfig  # noqa: E402
from heatrack.models.decode import DecodeConfig, merge_detections  # noqa: E402
from heatrack.models.yolox import YoloxPeople  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Candidates: the rules whose passes keep issue 16's speed bars (25 FPS on 640x360 to
#: 640x480, 15 on 1080p; BENCHMARKS.md "The input by the frame's size" measures them): 512 on
#: small frames, 640 or 640 + 320 from 960 or 1920 px.
RULES = (
    "512",
    "512/960:640",
    "512/960:640+320",
    "512/1920:640",
    "512/1920:640+320",
)
#: Scored beside them, not chosen: 640 px, or a 320 px pass, on small frames costs them the
#: speed bar.
REFERENCE = ("640", "512+320", "640+320", "512+320/960:640")


def parse_rule(text: str) -> InferenceConfig:
    """'512+320/960:640' -> input_long_side 512, extra_long_sides (320,), large_frame_side
    960, large_frame_long_sides (640,)."""
    small, _, large = text.partition("/")
    first, *extra = (int(s) for s in small.split("+"))
    config = InferenceConfig(first, extra_long_sides=tuple(extra), large_frame_side=0)
    if large:
        bound, _, sides = large.partition(":")
        config = InferenceConfig(
            first, extra_long_sides=tuple(extra), large_frame_side=int(bound),
            large_frame_long_sides=tuple(int(s) for s in sides.split("+")),
        )  # fmt: skip
    return config


def cost(config: InferenceConfig) -> float:
    """Input pixels of a 640x480 frame plus a 1080p frame (the tie-break: cheaper first)."""
    return float(sum(s * s for w, h in ((640, 480), (1920, 1080)) for s in config.passes(w, h)))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--folds", type=Path, required=True)
    ap.add_argument("--sources", nargs="+", choices=sorted(SOURCES), default=list(SOURCES))
    ap.add_argument("--models", nargs="+", choices=sorted(SOURCES),
                    help="only cache and score these folds (while others still train)")  # fmt: skip
    ap.add_argument("--rules", nargs="+", default=RULES, help="the candidates")
    ap.add_argument("--reference", nargs="*", default=REFERENCE, help="scored, never chosen")
    ap.add_argument("--pets-step", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=ROOT / "outputs" / "scale-ranges")
    ap.add_argument("--baselines", type=Path, default=ROOT / "outputs" / "baselines",
                    help="YOLOX-nano's cached boxes (detector_sources.py --cache)")  # fmt: skip
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    decode = DecodeConfig(score_threshold=0.01, top_k=1000)  # as detector_sources.py
    rules = {r: parse_rule(r) for r in (*args.rules, *args.reference)}
    # Every side of every rule: a small frame's passes and a huge one's.
    sides = sorted({s for c in rules.values() for s in (*c.passes(1, 1), *c.passes(10**6, 1))})
    yolox = YoloxPeople(YOLOX, score_threshold=0.01)
    table: dict[str, dict[str, dict[str, float]]] = {}  # model -> source -> rule -> AP50
    yolox_ap: dict[str, float] = {}
    for model in args.models or args.sources:
        weights = args.folds / model / "last.pt"
        detectors = {
            s: Detector.from_checkpoint(weights, InferenceConfig(decode=decode).sized(s))
            for s in sides
        }
        table[model] = {}
        for source in args.sources:
            step = args.pets_step if source == "PETS09-S2L1" else 1
            parts = []
            for part, gt, evaluated, every in frames_of(source, step):
                found = {
                    s: load_boxes(
                        args.cache / args.folds.name / model / f"{part}-{step}-{s}.npz",
                        lambda d=det, ev=evaluated, e=every: heatrack_boxes(d, ev, e),
                    )
                    for s, det in detectors.items()
                }
                theirs = cached(args.baselines / f"yolox-{part}-{step}.npz", lambda ev=evaluated: [
                    (i, d.xywh, d.scores) for i, d, _ in yolox.stream(ev)])  # fmt: skip
                frames = [(i, im.shape[1], im.shape[0]) for i, im in evaluated]
                parts.append((gt, frames, found, theirs))
            done = [[i for i, _, _ in frames] for _, frames, _, _ in parts]
            gts = [(gt, d) for (gt, *_), d in zip(parts, done, strict=True)]
            scored = sorted(_offsets([(g, None, d, None) for g, d in gts]))
            if source not in yolox_ap:
                dets = [(theirs, d) for (*_, theirs), d in zip(parts, done, strict=True)]
                yolox_ap[source] = evaluate_detections(_pool(gts), _pool(dets), frames=scored)[
                    "AP50"
                ]
            table[model][source] = {}
            for name, rule in rules.items():
                dets = []
                for (_, frames, found, _), d in zip(parts, done, strict=True):
                    merged = []
                    for i, w, h in frames:
                        passes = [found[s].get(i) for s in rule.passes(w, h)]
                        passes = [p for p in passes if p]
                        if passes:
                            m = merge_detections(passes, decode)
                            merged.append((i, m.xywh, m.scores))
                    dets.append((rows_of(merged), d))
                table[model][source][name] = evaluate_detections(
                    _pool(gts), _pool(dets), frames=scored
                )["AP50"]
            print(model, source, {k: round(v, 3) for k, v in table[model][source].items()},
                  "YOLOX", round(yolox_ap[source], 3), flush=True)  # fmt: skip
    report(args, table, yolox_ap, rules)


def best(candidates, ap50, yolox, sources) -> str:
    """The rule meeting issue 16's bar on ``sources`` (every one at least YOLOX-nano's AP50)
    with the best mean there; if none meets it, the one whose worst margin is least bad;
    ties to the cheaper, then to the lower large-frame bound (frames in between have the
    pixels)."""

    def key(rule):
        worst = min(ap50[s][rule] - yolox[s] for s in sources)
        mean = float(np.mean([ap50[s][rule] for s in sources]))
        config = parse_rule(rule)
        return (worst >= 0, 0.0 if worst >= 0 else round(worst, 6), round(mean, 6),
                -cost(config), -(config.large_frame_side or 10**9))  # fmt: skip

    return max(candidates, key=key)


def report(args, table, yolox_ap, rules) -> None:
    folds = [s for s in args.sources if s in table]
    shown = [*args.rules, *args.reference]
    rows = []
    for source in folds:
        others = [s for s in args.sources if s != source]
        chosen = best(args.rules, table[source], yolox_ap, others)
        rows.append({"source": source, "chosen": chosen,
                     "held_out": {r: table[source][source][r] for r in rules},
                     "yolox": yolox_ap[source]})  # fmt: skip
    print("\n| held-out source | rule chosen on the other five | AP50 at it | "
          + " | ".join(shown) + " | YOLOX-nano |")  # fmt: skip
    print("|---|---|---:|" + "---:|" * len(shown) + "---:|")
    for r in rows:
        cells = " | ".join(f"{r['held_out'][k]:.3f}" for k in shown)
        print(f"| {r['source']} | {r['chosen']} | {r['held_out'][r['chosen']]:.3f} | {cells} | "
              f"{r['yolox']:.3f} |")  # fmt: skip
    if len(rows) < len(args.sources):
        return  # the protocol's mean needs every fold
    mean_by = {k: float(np.mean([r["held_out"][k] for r in rows])) for k in rules}
    protocol = float(np.mean([r["held_out"][r["chosen"]] for r in rows]))
    yolox = float(np.mean([r["yolox"] for r in rows]))
    cells = " | ".join(f"{mean_by[k]:.3f}" for k in shown)
    print(f"| mean | | {protocol:.3f} | {cells} | {yolox:.3f} |")
    held = {r["source"]: r["held_out"] for r in rows}
    shipped = best(args.rules, held, yolox_ap, folds)
    print(f"rule for the shipped default (the same choice on the held-out figures): {shipped}, "
          f"mean {mean_by[shipped]:.3f} (YOLOX-nano {yolox:.3f})")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "folds": str(args.folds), "rows": rows, "mean_by_rule": mean_by,
            "protocol_mean": protocol, "yolox_mean": yolox, "shipped": shipped,
            "ap50": table}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
