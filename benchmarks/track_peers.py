"""heatrack's tracker against ByteTrack, OC-SORT, BoT-SORT (boxmot), norfair and motpy.

Every tracker gets identical detections, frame by frame, in one run; TrackEval (through
``heatrack.eval.mot``) scores all of them; frames per second count only the time spent inside
each tracker's update calls (building its input objects is excluded for everyone); every
tracker runs each sequence ``--repeat`` times and its fastest run counts, which damps the
noise of a shared machine.

Detection sets: the regimes of ``benchmarks/regimes.py`` (mot15, mot17-lift, mot17-noisy,
mot17-compressed, mot17-shifted-low, yolox, hog, heatrack-folds).

Peers are installed for this benchmark only:
    .venv/bin/pip install --no-deps -r benchmarks/requirements.txt

    python benchmarks/track_peers.py --sets mot15 mot17-noisy mot17-lift --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from heatrack.eval.mot import COMBINED, SequenceData, evaluate
from heatrack.io.mot import MotRows
from heatrack.tracking.tracker import Tracker, TrackerConfig
from heatrack.types import Detections

sys.path.insert(0, str(Path(__file__).resolve().parent))
from regimes import load_regime  # noqa: E402

# --- adapters: start(fps, w, h); update(xyxy, scores) -> (ids, xyxy); prepare() is untimed ---


class Heatrack:
    name = "heatrack"

    def __init__(self, config: TrackerConfig | None = None, label: str = "heatrack"):
        self.config = config or TrackerConfig()
        self.name = label

    def start(self, fps, w, h):
        self.t = Tracker(self.config, frame_rate=fps)

    def prepare(self, xyxy, scores):
        return Detections(xyxy=xyxy, scores=scores)

    def update(self, dets):
        out = self.t.update(dets)
        return out.ids, out.xyxy


class BoxmotPeer:
    def __init__(self, name, **options):
        self.name = {"bytetrack": "ByteTrack", "ocsort": "OC-SORT", "botsort": "BoT-SORT"}[name]
        self.key, self.options = name, options

    def start(self, fps, w, h):
        from boxmot.trackers.factory import create_tracker
        from boxmot.trackers.specs import TrackerSpec

        opts = dict(self.options)
        if self.key != "ocsort":  # OC-SORT counts its max_age in frames and takes no frame rate
            opts["frame_rate"] = int(round(fps))
        self.t = create_tracker(TrackerSpec(name=self.key, options=tuple(sorted(opts.items()))))
        self.frame = np.zeros((h, w, 3), np.uint8)

    def prepare(self, xyxy, scores):
        return np.concatenate([xyxy, scores[:, None], np.zeros((len(scores), 1))], axis=1).astype(
            np.float64
        )

    def update(self, dets):
        out = self.t.update(dets, self.frame)
        if len(out) == 0:
            return np.zeros(0, int), np.zeros((0, 4))
        return out[:, 4].astype(int), out[:, :4]


class NorfairPeer:
    name = "norfair"

    def start(self, fps, w, h):
        import norfair

        self.norfair = norfair
        self.t = norfair.Tracker(distance_function="iou", distance_threshold=0.7)

    def prepare(self, xyxy, scores):
        return [
            self.norfair.Detection(points=b.reshape(2, 2), scores=np.array([s, s]))
            for b, s in zip(xyxy, scores, strict=False)
        ]

    def update(self, dets):
        objs = self.t.update(detections=dets)
        if not objs:
            return np.zeros(0, int), np.zeros((0, 4))
        return np.array([o.id for o in objs]), np.array([o.estimate.reshape(4) for o in objs])


class MotpyPeer:
    name = "motpy"

    def start(self, fps, w, h):
        from motpy import Detection, MultiObjectTracker

        self.Detection = Detection
        self.t = MultiObjectTracker(dt=1.0 / fps)
        self.ids: dict[str, int] = {}

    def prepare(self, xyxy, scores):
        return [self.Detection(box=b, score=s) for b, s in zip(xyxy, scores, strict=False)]

    def update(self, dets):
        self.t.step(detections=dets)
        tracks = self.t.active_tracks()
        if not tracks:
            return np.zeros(0, int), np.zeros((0, 4))
        ids = np.array([self.ids.setdefault(t.id, len(self.ids) + 1) for t in tracks])
        return ids, np.array([t.box for t in tracks])


def peers() -> list:
    return [
        BoxmotPeer("bytetrack"),
        BoxmotPeer("ocsort"),
        BoxmotPeer("botsort", use_embeddings=False, use_cmc=False),
        NorfairPeer(),
        MotpyPeer(),
    ]


def run_tracker(adapter, dets: MotRows, info, repeat: int = 1) -> tuple[MotRows, float, int]:
    """Results rows, seconds inside update calls (the least of ``repeat`` runs), frames."""
    rows, best, frames = _run_once(adapter, dets, info)
    for _ in range(repeat - 1):
        best = min(best, _run_once(adapter, dets, info)[1])
    return rows, best, frames


def _run_once(adapter, dets: MotRows, info) -> tuple[MotRows, float, int]:
    adapter.start(info.frame_rate, info.width, info.height)
    per_frame = dict(dets.by_frame())
    frames, ids, boxes, spent = [], [], [], 0.0
    for f in range(1, info.length + 1):
        r = per_frame.get(f)
        xyxy = r.xyxy.astype(np.float32) if r is not None else np.zeros((0, 4), np.float32)
        scores = r.conf.astype(np.float32) if r is not None else np.zeros(0, np.float32)
        prepared = adapter.prepare(xyxy, scores)
        start = time.perf_counter()
        tid, box = adapter.update(prepared)
        spent += time.perf_counter() - start
        frames.append(np.full(len(tid), f))
        ids.append(np.asarray(tid, np.int64))
        boxes.append(np.asarray(box, np.float64).reshape(-1, 4))
    frames, ids, boxes = np.concatenate(frames), np.concatenate(ids), np.concatenate(boxes)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    n = len(frames)
    rows = MotRows(frames, ids, xywh, np.ones(n), np.ones(n, np.int64), np.ones(n), adapter.name)
    return rows, spent, info.length


def track_regime(adapter, seqs, repeat: int = 1) -> tuple[dict, float, int]:
    """TrackEval metrics of ``adapter`` over a regime's sequences, seconds inside its update
    calls and frames tracked."""
    results, seconds, frames = [], 0.0, 0
    for seq, gt, dets, info in seqs:
        rows, s, n = run_tracker(adapter, dets, info, repeat)
        results.append(SequenceData(seq, info.length, gt, rows))
        seconds += s
        frames += n
    return evaluate(results), seconds, frames


def run_set(name: str, trackers: list, repeat: int = 1) -> dict:
    seqs = load_regime(name)
    table = {}
    for adapter in trackers:
        metrics, seconds, frames = track_regime(adapter, seqs, repeat)
        table[adapter.name] = {
            "combined": metrics[COMBINED],
            "per_sequence": {k: v for k, v in metrics.items() if k != COMBINED},
            "fps": frames / seconds if seconds else float("inf"),
            "update_seconds": seconds,
            "frames": frames,
        }
        print(
            f"  {name:12s} {adapter.name:10s} HOTA {metrics[COMBINED]['HOTA']:6.2f} "
            f"IDF1 {metrics[COMBINED]['IDF1']:6.2f} fps {table[adapter.name]['fps']:9.1f}",
            file=sys.stderr,
        )
    return table


def markdown(name: str, table: dict) -> str:
    ours = table["heatrack"]["fps"]
    lines = [
        f"**{name}**",
        "",
        "| tracker | HOTA | AssA | IDF1 | MOTA | IDSW | update FPS | heatrack speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for tracker, r in table.items():
        c = r["combined"]
        lines.append(
            f"| {tracker} | {c['HOTA']:.2f} | {c['AssA']:.2f} | {c['IDF1']:.2f} | {c['MOTA']:.2f} "
            f"| {c['IDSW']} | {r['fps']:.0f} | {ours / r['fps']:.1f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sets", nargs="+", default=["mot15", "mot17-noisy", "mot17-lift"])
    ap.add_argument("--only", nargs="+", help="run only these trackers (names as printed)")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="run every tracker this many times per sequence; time = the fastest run",
    )
    ap.add_argument("--json", type=Path, help="write all numbers here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("boxmot").setLevel(logging.ERROR)
    trackers = [Heatrack()] + peers()
    if args.only:
        trackers = [t for t in trackers if t.name in args.only]
    out = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "config": asdict(TrackerConfig()),
        "sets": {},
    }
    for name in args.sets:
        out["sets"][name] = run_set(name, trackers, args.repeat)
        print(markdown(name, out["sets"][name]) + "\n")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
