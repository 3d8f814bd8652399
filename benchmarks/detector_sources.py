"""Detection AP50 per labelled source: heatrack against YOLOX-nano and HOG on the same frames.

Sources (``SOURCES``): the MOT sequences PETS09-S2L1 and TUD-Stadtmitte, the four MOT17-mini
scenes together, and the still-image sets coco128, cctv-clinic and capston2. On every evaluated
frame of a source, three detectors:

  heatrack     a heatrack checkpoint: one for all sources (``--checkpoint``, default the
               shipped detector: say which sources it trained on), or with ``--folds DIR``
               the model ``DIR/<source>/last.pt`` of the fold that left that source out
               (leave-one-source-out, ``benchmarks/detector_folds.py --protocol sources``)
  YOLOX-nano   ``../shared/models/yolox_nano_coco.onnx``, 416 letterbox, person class
  HOG          OpenCV's people detector (``hog_baseline.py``), upscaled 1.5x

A MOT sequence is streamed whole (the T-frame windows see real neighbours) and every
``--step``-th labelled frame scored; a still image is a clip of T copies of itself, its middle
frame scored. Scoring is ``heatrack.eval.detection`` (IoU 0.5, ignore regions honoured). Both
networks' boxes count from a score of 0.01 (``--score-threshold``), without a cap per frame
below 1,000 (YOLOX-nano's decoding has none): AP needs the low-score tail of each.
YOLOX and HOG detections are kept in ``--cache`` (they do not change between runs).

    python benchmarks/detector_sources.py --folds runs/sources --json outputs/sources.json
    python benchmarks/detector_sources.py --sources coco128 cctv-clinic capston2   # shipped
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detector_ap import rows_of  # noqa: E402
from hog_baseline import hog_detect  # noqa: E402

from heatrack.eval.detection import evaluate_detections  # noqa: E402
from heatrack.inference import Detector, InferenceConfig  # noqa: E402
from heatrack.io.mot import MotRows, read_gt  # noqa: E402
from heatrack.io.sources import MotSequenceSource  # noqa: E402
from heatrack.models.decode import DecodeConfig  # noqa: E402
from heatrack.models.weights import shipped_weights  # noqa: E402
from heatrack.models.yolox import YoloxPeople  # noqa: E402
from heatrack.train.detector import StillImages, StillImagesConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
YOLOX = ROOT.parent / "shared" / "models" / "yolox_nano_coco.onnx"

#: Every labelled source: MOT sequence folders, or a still-image set (under ../shared/data).
SOURCES = {
    "PETS09-S2L1": ("MOT15/train/PETS09-S2L1",),
    "TUD-Stadtmitte": ("MOT15/train/TUD-Stadtmitte",),
    "MOT17-mini": tuple(f"MOT17-mini/train/MOT17-{n}-FRCNN" for n in ("02", "04", "05", "09")),
    "coco128": "images/coco128",
    "cctv-clinic": "images/cctv-clinic",
    "capston2": "images/capston2",
}


def frames_of(source: str, step: int):
    """(part name, gt MotRows, [(frame, image)] evaluated, iterator of every frame or None)."""
    spec = SOURCES[source]
    if isinstance(spec, str):
        still = StillImages(StillImagesConfig(path=spec), DATA / spec, max_side=100_000)
        wanted = still.labelled[::step]
        rows = [still.rows[f] for f in wanted]
        gt = _pool([(r, []) for r in rows], shift=False)
        yield source, gt, [(f, still.image(f)) for f in wanted], None
        return
    for rel in spec:
        folder = DATA / rel
        gt = read_gt(folder / "gt" / "gt.txt")
        wanted = set(sorted(set(gt.frames.tolist()))[::step])
        every = list(MotSequenceSource(folder))
        yield folder.name, gt, [(i, im) for i, im in every if i in wanted], every


def heatrack_boxes(detector: Detector, evaluated, every) -> list:
    """[(frame, xywh, scores)] of ``detector`` on the evaluated frames."""
    keep = {i for i, _ in evaluated}
    if every is not None:  # a sequence: streamed whole
        return [(i, d.xywh, d.scores) for i, d, _ in detector.stream(every) if i in keep]
    t, out = detector.frames, []
    middle = (t + 1) // 2
    for index, image in evaluated:  # a still: T copies, the middle one scored
        for k, dets, _ in detector.stream((k, image) for k in range(1, t + 1)):
            if k == middle:
                out.append((index, dets.xywh, dets.scores))
    return out


def heatrack_rows(detector: Detector, evaluated, every) -> MotRows:
    return rows_of(heatrack_boxes(detector, evaluated, every))


def cached(path: Path, make) -> MotRows:
    if path.is_file():
        with np.load(path) as z:
            return rows_of([(int(f), z[f"b{f}"], z[f"s{f}"]) for f in z["frames"]])
    per_frame = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"frames": np.array([f for f, _, _ in per_frame], np.int64)}
    for f, b, s in per_frame:
        arrays[f"b{f}"], arrays[f"s{f}"] = b, s
    np.savez(path, **arrays)
    return rows_of(per_frame)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sources", nargs="+", choices=sorted(SOURCES), default=list(SOURCES))
    ap.add_argument("--checkpoint", type=Path, help="one model for every source")
    ap.add_argument("--folds", type=Path, help="per source, DIR/<source>/last.pt left it out")
    ap.add_argument("--step", type=int, default=1, help="every step-th labelled frame / image")
    ap.add_argument("--pets-step", type=int, default=5, help="PETS09's 795 frames: every 5th")
    ap.add_argument(
        "--long-side",
        type=int,
        metavar="N",
        help="heatrack reads every frame at N (default: InferenceConfig's, 512 px "
        "and 640 for frames of at least 960)",
    )
    ap.add_argument(
        "--extra-long-sides",
        type=int,
        nargs="+",
        metavar="N",
        help="heatrack multi-scale, every frame: InferenceConfig.extra_long_sides",
    )
    # fmt: skip
    ap.add_argument("--peak-window", type=int, default=DecodeConfig.level_peak_window,
                    help="levels models: DecodeConfig.level_peak_window")  # fmt: skip
    ap.add_argument("--score-threshold", type=float, default=0.01,
                    help="heatrack's boxes kept for AP: from 0.01, as YOLOX-nano's")  # fmt: skip
    ap.add_argument("--top-k", type=int, default=1000,
                    help="DecodeConfig.top_k: boxes per frame (YOLOX-nano: no cap)")  # fmt: skip
    ap.add_argument("--cache", type=Path, default=ROOT / "outputs" / "baselines")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    decode = DecodeConfig(
        score_threshold=args.score_threshold, top_k=args.top_k,
        level_peak_window=args.peak_window,
    )  # fmt: skip
    config = InferenceConfig(decode=decode).sized(args.long_side, args.extra_long_sides)
    yolox = YoloxPeople(YOLOX, score_threshold=0.01)
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    table = []
    for source in args.sources:
        weights = (args.folds / source / "last.pt") if args.folds else (
            args.checkpoint or shipped_weights("detector"))  # fmt: skip
        detector = Detector.from_checkpoint(weights, config)
        step = args.pets_step if source == "PETS09-S2L1" else args.step
        scores = {"heatrack": [], "YOLOX-nano": [], "HOG": []}
        gts, n = [], 0
        for part, gt, evaluated, every in frames_of(source, step):
            done = [i for i, _ in evaluated]
            ours = heatrack_rows(detector, evaluated, every)
            theirs = cached(args.cache / f"yolox-{part}-{step}.npz", lambda ev=evaluated: [
                (i, d.xywh, d.scores) for i, d, _ in yolox.stream(ev)])  # fmt: skip
            hogs = cached(args.cache / f"hog-{part}-{step}.npz", lambda ev=evaluated: [
                (i, *hog_detect(im, hog, 1.5)) for i, im in ev])  # fmt: skip
            for name, rows in (("heatrack", ours), ("YOLOX-nano", theirs), ("HOG", hogs)):
                scores[name].append((gt, rows, done, part))
            gts.append(part)
            n += len(done)
        row = {"source": source, "frames": n, "weights": str(weights)}
        for name, parts in scores.items():
            # Parts of one source (MOT17-mini's scenes) pooled: frames renumbered apart.
            gt = _pool([(g, d) for g, _, d, _ in parts])
            dets = _pool([(r, d) for _, r, d, _ in parts])
            frames = sorted(_offsets(parts))
            row[name] = evaluate_detections(gt, dets, frames=frames)["AP50"]
        table.append(row)
        gain = row["heatrack"] - row["YOLOX-nano"]
        print(f"| {source} | {n} | {row['heatrack']:.3f} | {row['YOLOX-nano']:.3f} | "
              f"{row['HOG']:.3f} | {gain:+.3f} |", flush=True)  # fmt: skip
    mean = {k: float(np.mean([r[k] for r in table])) for k in ("heatrack", "YOLOX-nano", "HOG")}
    print(f"| mean | | {mean['heatrack']:.3f} | {mean['YOLOX-nano']:.3f} | {mean['HOG']:.3f} | "
          f"{mean['heatrack'] - mean['YOLOX-nano']:+.3f} |")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "rows": table, "mean": mean}, indent=2) + "\n")  # fmt: skip


OFFSET = 100_000  # frame numbers of pooled parts kept apart


def _pool(parts: list[tuple[MotRows, list[int]]], shift: bool = True) -> MotRows:
    """The rows of several parts as one (frame numbers of part k moved by k * OFFSET)."""
    return MotRows.concatenate([
        dataclasses.replace(rows, frames=rows.frames + k * OFFSET) if shift else rows
        for k, (rows, _) in enumerate(parts)
    ])  # fmt: skip


def _offsets(parts) -> list[int]:
    return [f + k * OFFSET for k, (_, _, done, _) in enumerate(parts) for f in done]


if __name__ == "__main__":
    main()
