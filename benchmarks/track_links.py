"""What the detector's own links buy: the same detections tracked with and without them.

For each ``--fold SEQ=CHECKPOINT`` (a detector with the displacement head that never saw SEQ in
training), the detector streams the sequence once, at each window length in ``--frames`` (the
fusion block is a 3-tap temporal convolution, so one set of weights runs at any T >= 2; each
frame is still encoded once, only the fusion and heads see the whole window). Its detections
are then tracked by:

  tracker alone         heatrack's tracker without links (the tracker issue's tracker)
  tracker + links       the same, taking the detector's tracklet links as a cue
  nearest links         links from a linker given zero displacements (plain nearest-centre
                        linking): does the head add anything over proximity?
  ByteTrack             boxmot's ByteTrack on the same detections, with its defaults and with
                        heatrack's score thresholds (its default 0.6 suits other detectors)

Also reported: detection AP50, link precision (links joining boxes matched to the same gt
person, among links whose both ends match someone) and streaming frames per second of the
detector with and without the displacement head and linker (same weights otherwise).

    python benchmarks/track_links.py --fold TUD-Stadtmitte=runs/links-A/last.pt \
        --fold PETS09-S2L1=runs/links-B/last.pt --frames 3 5 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from track_peers import BoxmotPeer, run_tracker  # noqa: E402

from heatrack.boxes import iou_matrix  # noqa: E402
from heatrack.config import from_dict  # noqa: E402
from heatrack.eval.detection import evaluate_detections  # noqa: E402
from heatrack.eval.mot import COMBINED, SequenceData, evaluate  # noqa: E402
from heatrack.inference import Detector, InferenceConfig  # noqa: E402
from heatrack.io.mot import MotRows, SeqInfo, read_gt, read_seqinfo  # noqa: E402
from heatrack.io.sources import MotSequenceSource  # noqa: E402
from heatrack.models.heatmap import HeatmapNet, HeatmapNetConfig  # noqa: E402
from heatrack.models.weights import read_weights, shipped_weights  # noqa: E402
from heatrack.pipeline import frames_to_rows  # noqa: E402
from heatrack.run import tracker_config_for  # noqa: E402
from heatrack.tracking.links import relink  # noqa: E402
from heatrack.tracking.tracker import Tracker, TrackerConfig  # noqa: E402
from heatrack.types import Detections  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "MOT15" / "train"
SHIPPED = read_weights(shipped_weights("detector"))[2]
COLUMNS = ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW")


def load(checkpoint: str, frames: int, displacement: bool = True) -> Detector:
    """The checkpoint's detector run with ``frames``-frame windows (with or without its
    displacement head)."""
    state, model_cfg, meta = read_weights(checkpoint)
    cfg = from_dict(HeatmapNetConfig, model_cfg)
    cfg = dataclasses.replace(cfg, frames=frames, displacement=displacement and cfg.displacement)
    net = HeatmapNet(cfg, pretrained=False)
    if not cfg.displacement:
        state = {k: v for k, v in state.items() if not k.startswith("displacement.")}
    net.load_state_dict(state)
    detector = Detector(net, InferenceConfig(threads=torch.get_num_threads()))
    detector.meta = meta
    return detector


def subsample(folder: Path, step: int) -> tuple[SeqInfo, MotRows, list]:
    """The sequence's info, gt and decoded frames with every ``step``-th frame kept (1, 1 +
    step, ...), renumbered 1, 2, ...: the video as a camera at 1/step of its rate saw it."""
    info = read_seqinfo(folder)
    gt = read_gt(folder / "gt" / "gt.txt")
    frames = list(MotSequenceSource(folder))
    if step == 1:
        return info, gt, frames
    gt = gt[(gt.frames - 1) % step == 0]
    gt = dataclasses.replace(gt, frames=(gt.frames - 1) // step + 1)
    frames = [(k + 1, image) for k, (_, image) in enumerate(frames[::step])]
    info = dataclasses.replace(info, length=len(frames), frame_rate=info.frame_rate / step)
    return info, gt, frames


def stream(detector: Detector, frames: list) -> tuple[list[tuple[int, Detections]], float]:
    """Every frame's detections, and frames per second of the detector alone (frames are
    decoded beforehand, so decoding is not counted)."""
    start = time.perf_counter()
    out = [(index, dets) for index, dets, _ in detector.stream(frames)]
    return out, len(frames) / (time.perf_counter() - start)


def track(dets, config, fps, relinked: bool = False) -> MotRows:
    """Result rows of the tracker on ``dets``; ``relinked`` replaces the detector's links
    with nearest-centre ones (the same linker, blind to the head's vectors)."""
    tracker = Tracker(config, frame_rate=fps)
    if relinked:
        dets = relink(dets, blind=True)
    return frames_to_rows((f, tracker.update(d, frame_index=f)) for f, d in dets)


def link_precision(dets, gt: MotRows) -> tuple[float, int]:
    """Share of links (a tracklet continued from one detected frame to the next) whose ends
    match the same gt person (IoU >= 0.5), among links whose both ends match someone."""
    gt_by = dict(gt[gt.pedestrian_mask()].by_frame())
    owner: dict[int, int] = {}
    right = total = 0
    for f, d in dets:
        g = gt_by.get(f)
        person = np.full(len(d), -1)
        if g is not None and len(d):
            iou = iou_matrix(d.xyxy.astype(np.float64), g.xyxy)
            best = iou.argmax(axis=1)
            person = np.where(iou.max(axis=1) >= 0.5, g.ids[best], -1)
        for tracklet, p in zip(d.tracklets.tolist(), person.tolist(), strict=True):
            before = owner.get(tracklet, -1)
            if before >= 0 and p >= 0:
                total += 1
                right += before == p
            owner[tracklet] = p
    return right / max(total, 1), total


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--fold", action="append", required=True, metavar="SEQ=CHECKPOINT")
    ap.add_argument("--frames", type=int, nargs="+", default=[3])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--thresholds",
        choices=["shipped", "defaults"],
        default="shipped",
        help="tracker score thresholds: the shipped detector's (fit for fold A's score scale) "
        "or TrackerConfig's defaults (ByteTrack-like, for detectors with higher scores)",
    )
    ap.add_argument(
        "--high-scores", type=float, nargs="+", metavar="S",
        help="also track at these values of TrackerConfig.high_score (new tracks at S + 0.05): "
        "how the gain depends on the score threshold",
    )  # fmt: skip
    ap.add_argument(
        "--frame-step", type=int, default=1, metavar="K",
        help="keep every K-th frame (and its ground truth), renumbered: the same video at 1/K "
        "of its frame rate, where people move K times as far between frames",
    )  # fmt: skip
    ap.add_argument("--repeat", type=int, default=2, help="speed runs per variant (best kept)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("boxmot").setLevel(logging.ERROR)
    folds = dict(f.split("=", 1) for f in args.fold)
    results: dict = {}
    lines = [
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"{args.threads} torch threads, every {args.frame_step} frame(s)",
        "",
        "| sequence | T | tracking | " + " | ".join(COLUMNS) + " |",
        "|---|---:|---|" + "---:|" * len(COLUMNS),
    ]
    speed_lines = [
        "| sequence | T | AP50 | link precision (links) | detector FPS | with head + linker |"
        " cost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for seq, checkpoint in folds.items():
        folder = DATA / seq
        info, gt, frames = subsample(folder, args.frame_step)
        for t in args.frames:
            detector = load(checkpoint, t)
            # Training checkpoints carry no thresholds: the shipped detector's (same recipe)
            # or the defaults. This also lowers the decode threshold to the low stage's.
            base = TrackerConfig(**SHIPPED["tracker"]) if args.thresholds == "shipped" else None
            config = tracker_config_for(detector, None, base or TrackerConfig())
            plain = load(checkpoint, t, displacement=False)
            plain.config = detector.config
            dets, fps = stream(detector, frames)  # the detections tracked below
            fps_links = fps if args.repeat else float("nan")
            fps_plain = float("nan")
            for r in range(args.repeat):  # alternate, keep the best: a shared machine is noisy
                if r:
                    fps_links = np.fmax(fps_links, stream(detector, frames)[1])
                fps_plain = np.fmax(fps_plain, stream(plain, frames)[1])
            ap50 = evaluate_detections(gt, frames_to_rows(dets))["AP50"]
            precision, links = link_precision(dets, gt)
            variants = [("", config)] + [
                (
                    f" (high {h:g})",
                    dataclasses.replace(config, high_score=h, new_track_score=h + 0.05),
                )
                for h in args.high_scores or []
            ]
            for suffix, cfg in variants:
                alone = dataclasses.replace(cfg, link_weight=0.0)
                peer = BoxmotPeer("bytetrack", track_thresh=cfg.high_score, min_conf=cfg.low_score)
                runs = {
                    "tracker alone": track(dets, alone, info.frame_rate),
                    "tracker + links": track(dets, cfg, info.frame_rate),
                    "nearest links": track(dets, cfg, info.frame_rate, relinked=True),
                    "ByteTrack, heatrack's thresholds": run_tracker(
                        peer, frames_to_rows(dets), info
                    )[0],
                }
                if not suffix:  # with its own thresholds: the same at every S
                    rows = run_tracker(BoxmotPeer("bytetrack"), frames_to_rows(dets), info)[0]
                    runs["ByteTrack"] = rows
                for label, rows in runs.items():
                    m = evaluate([SequenceData(seq, info.length, gt, rows)])[COMBINED]
                    results.setdefault(seq, {}).setdefault(t, {})[label + suffix] = m
                    cells = [f"{m[c]:.2f}" if c != "IDSW" else str(int(m[c])) for c in COLUMNS]
                    lines.append(f"| {seq} | {t} | {label}{suffix} | " + " | ".join(cells) + " |")
                    print(lines[-1], flush=True)
            results[seq][t]["speed"] = {
                "AP50": ap50,
                "link_precision": precision,
                "links": links,
                "fps_plain": fps_plain,
                "fps_links": fps_links,
            }
            speed_lines.append(
                f"| {seq} | {t} | {ap50:.3f} | {precision:.3f} ({links}) | {fps_plain:.1f} "
                f"| {fps_links:.1f} | {100 * (fps_plain / fps_links - 1):+.1f}% |"
            )
            print(speed_lines[-1], flush=True)
    print("\n".join(lines + [""] + speed_lines))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
