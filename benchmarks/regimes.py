"""Detection regimes with ground truth, for tuning and scoring trackers (issue 18).

A regime is one kind of detector output on sequences with ground truth. Every tracker sees a
regime's detections unchanged (boxes and scores only; no links, no embeddings).

  mot15              the 7 MOT15 train sequences with their public Faster R-CNN det.txt
  mot17-lift         MOT17-02/04/05/09 with Lif_T's published boxes as detections (ids dropped)
  mot17-noisy        MOT17-02/04/05/09 gt through ``heatrack.data.noise.REGIMES["noisy"]``
  mot17-compressed   ... ``REGIMES["compressed"]`` (scores squeezed into ~0.3-0.6)
  mot17-shifted-low  ... ``REGIMES["shifted-low"]`` (the noisy scores times 0.45)
  yolox              YOLOX-nano (416 letterbox, person class, scores >= 0.05) on PETS09-S2L1
                     and TUD-Stadtmitte
  hog                OpenCV's HOG people detector on the same two (upscaled 1.5x; score =
                     SVM margin / 3 clipped to 1: a fixed mapping, not tuned for any tracker)
  heatrack-folds     heatrack's detector on the same two, each sequence by a fold model that
                     never saw it (``--fold-detector SEQ=CHECKPOINT``), peaks >= 0.05

The noise regimes are seeded (seed 0, ``NoiseModel.seed``) and so exactly reproducible. The
model regimes are computed once and kept in ``--cache`` (default ``outputs/regimes``) as MOT
det.txt files; a later run reads them from there.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from heatrack.data.noise import REGIMES as NOISE_REGIMES
from heatrack.data.noise import detections_from_gt
from heatrack.io.mot import (
    MotRows,
    read_detections,
    read_gt,
    read_results,
    read_seqinfo,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
YOLOX = ROOT.parent / "shared" / "models" / "yolox_nano_coco.onnx"
VIDEOS = ("PETS09-S2L1", "TUD-Stadtmitte")  # the real videos with ground truth
NAMES = (
    "mot15",
    "mot17-lift",
    "mot17-noisy",
    "mot17-compressed",
    "mot17-shifted-low",
    "yolox",
    "hog",
    "heatrack-folds",
)
HOG_SCALE = 3.0

Sequence = tuple[str, MotRows, MotRows, object]  # name, gt, detections, seqinfo


def load_regime(
    name: str, cache: Path = ROOT / "outputs" / "regimes", folds: dict[str, str] | None = None
) -> list[Sequence]:
    """(sequence, gt, detections, seqinfo) for every sequence of regime ``name``."""
    if name == "mot15":
        return [_with_dets(f, read_detections(f / "det" / "det.txt")) for f in _mot15()]
    if name.startswith("mot17-"):
        kind = name.removeprefix("mot17-")
        out = []
        for folder in sorted((DATA / "MOT17" / "train").iterdir()):
            info = read_seqinfo(folder)
            gt = read_gt(folder / "gt" / "gt.txt")
            if kind == "lift":
                dets = read_results(DATA / "trackers" / "Lif_T" / f"{info.name}.txt")
            elif kind in NOISE_REGIMES:
                model = NOISE_REGIMES[kind]
                dets = detections_from_gt(gt, info.length, info.width, info.height, model)
            else:
                raise ValueError(f"unknown regime {name!r}; regimes: {', '.join(NAMES)}")
            out.append((info.name, gt, dets, info))
        return out
    if name in ("yolox", "hog", "heatrack-folds"):
        out = []
        for seq in VIDEOS:
            folder = DATA / "MOT15" / "train" / seq
            dets = detector_output(name, folder, cache, (folds or {}).get(seq))
            if name == "hog":
                dets = replace(dets, conf=np.minimum(dets.conf / HOG_SCALE, 1.0))
            out.append(_with_dets(folder, dets))
        return out
    raise ValueError(f"unknown regime {name!r}; regimes: {', '.join(NAMES)}")


def _mot15() -> list[Path]:
    return sorted(p for p in (DATA / "MOT15" / "train").iterdir() if p.is_dir())


def _with_dets(folder: Path, dets: MotRows) -> Sequence:
    info = read_seqinfo(folder)
    return info.name, read_gt(folder / "gt" / "gt.txt"), dets, info


def detector_output(
    name: str, folder: Path, cache: Path = ROOT / "outputs" / "regimes", checkpoint=None
) -> MotRows:
    """Raw output (HOG: SVM margins) of detector ``name`` (yolox, hog, heatrack-folds) on
    every frame of the sequence ``folder``, read from ``cache/name/SEQ.txt`` or made there."""
    path = cache / name / f"{folder.name}.txt"
    if not path.is_file():
        _detect(name, folder, path, checkpoint)
    return read_detections(path)


def _detect(name: str, folder: Path, path: Path, checkpoint: str | None) -> None:
    from heatrack.io.sources import MotSequenceSource

    print(f"{name}: detecting {folder.name} (kept in {path})", file=sys.stderr, flush=True)
    source = MotSequenceSource(folder)
    if name == "yolox":
        from heatrack.models.yolox import YoloxPeople

        stream = YoloxPeople(YOLOX, score_threshold=0.05).stream(source)
        found = ((i, d.xywh, d.scores) for i, d, _ in stream)
    elif name == "hog":
        import cv2
        from hog_baseline import hog_detect

        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        found = ((i, *hog_detect(image, hog, 1.5)) for i, image in source)
    else:
        if checkpoint is None:
            raise SystemExit(
                f"regime heatrack-folds: no detections cached at {path} and no fold model for "
                f"{folder.name}: pass --fold-detector {folder.name}=CHECKPOINT (a detector "
                "trained without it, benchmarks/detector_source_folds.py)"
            )
        from heatrack.inference import InferenceConfig, load_detector
        from heatrack.models.decode import DecodeConfig

        config = InferenceConfig(decode=DecodeConfig(score_threshold=0.05), use_links=False)
        stream = load_detector(checkpoint, config).stream(source)
        found = ((i, d.xywh, d.scores) for i, d, _ in stream)
    frames, boxes, scores = [], [], []
    for index, xywh, conf in found:
        frames.append(np.full(len(conf), index))
        boxes.append(np.asarray(xywh, np.float64).reshape(-1, 4))
        scores.append(np.asarray(conf, np.float64))
    frames = np.concatenate(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_results(
        path, frames, np.full(len(frames), -1), np.concatenate(boxes), np.concatenate(scores)
    )
