"""What camera-motion compensation costs and buys.

Cost: milliseconds per frame of ``CameraMotion.estimate`` on real video (PETS09-S2L1, 768x576)
and on 1080p frames (MOT17-mini). Gain: HOTA / IDF1 of the tracker with and without it on
synthetic sequences whose camera shakes (exact ground truth, detections from the noise model).

    python benchmarks/camera_motion.py
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from pathlib import Path

from heatrack.data.noise import NoiseModel, detections_from_gt
from heatrack.data.synthetic import SyntheticConfig, render
from heatrack.eval.mot import COMBINED, SequenceData, evaluate
from heatrack.io.sources import open_source
from heatrack.pipeline import detections_by_frame, frames_to_rows
from heatrack.tracking.motion import CameraMotion
from heatrack.tracking.tracker import Tracker, TrackerConfig

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def cost_per_frame(source_path: Path, max_frames: int = 200) -> tuple[float, tuple[int, int]]:
    frames = []
    for _, image in open_source(source_path):
        frames.append(image)
        if len(frames) == max_frames:
            break
    cm = CameraMotion()
    start = time.perf_counter()
    for image in frames:
        cm.estimate(image)
    return 1000 * (time.perf_counter() - start) / len(frames), frames[0].shape[1::-1]


def gain(jitter: float, seeds=range(3)) -> dict[str, dict]:
    out = {}
    for use in (False, True):
        config = dataclasses.replace(TrackerConfig(), camera_motion=use)
        results = []
        for seed in seeds:
            cfg = SyntheticConfig(
                name=f"J{seed}",
                length=150,
                num_people=12,
                width=640,
                height=360,
                min_person_height=50,
                max_person_height=130,
                camera_jitter=jitter,
                seed=seed,
            )
            seq = render(cfg)
            det = detections_from_gt(
                seq.gt, cfg.length, cfg.width, cfg.height, NoiseModel(seed=seed)
            )
            tracker = Tracker(config, frame_rate=cfg.fps)
            per_frame = dict(detections_by_frame(det, cfg.length))
            stream = (
                (i, tracker.update(per_frame[i], frame=seq.frames[i - 1], frame_index=i))
                for i in range(1, cfg.length + 1)
            )
            results.append(SequenceData(cfg.name, cfg.length, seq.gt, frames_to_rows(stream)))
        out["with" if use else "without"] = evaluate(results)[COMBINED]
    return out


def main() -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}, date {time.strftime('%Y-%m-%d')}"
    )
    for path in (DATA / "MOT15/train/PETS09-S2L1", DATA / "MOT17-mini/train/MOT17-04-FRCNN"):
        if path.exists():
            ms, size = cost_per_frame(path)
            print(f"cost: {path.name} {size[0]}x{size[1]}: {ms:.2f} ms per frame")
    print("| camera jitter (px/frame) | CMC | HOTA | AssA | IDF1 | IDSW |")
    print("|---:|---|---:|---:|---:|---:|")
    for jitter in (0.0, 2.0, 4.0):
        for name, m in gain(jitter).items():
            print(
                f"| {jitter} | {name} | {m['HOTA']:.2f} | {m['AssA']:.2f} | {m['IDF1']:.2f} "
                f"| {m['IDSW']} |"
            )


if __name__ == "__main__":
    main()
