"""End-to-end speed of the main job on 2 CPU cores: decode, detector, embedder, tracker.

Runs ``heatrack.run.track_frames`` over a real video with the shipped models, at the default
input size, once per backend (torch, ONNX Runtime), once without appearance and once without
the detector's links in time (its displacement head and linker skipped), each in its own
process so that peak memory (max RSS) is the backend's own; the configurations take turns
``--repeat`` times and the median FPS is reported, so that a drifting machine hits them alike.
Warm-up: the first 10 frames are not timed (ONNX export on first use is excluded too).

    python benchmarks/track_speed.py --video ../shared/data/videos/london-crossing.mp4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(video: str, backend: str, appearance: bool, links: bool, frames: int) -> dict:
    import torch

    from heatrack.inference import InferenceConfig, load_detector
    from heatrack.io.sources import open_source
    from heatrack.models.reid import load_embedder
    from heatrack.run import track_frames, tracker_config_for
    from heatrack.tracking.tracker import Tracker

    torch.set_num_threads(os.cpu_count() or 1)
    detector = load_detector(config=InferenceConfig(use_links=links), backend=backend)
    embedder = load_embedder(backend=backend) if appearance else None
    crops = [0]
    if embedder is not None:  # count the crops the tracker actually asks for
        embed = embedder.embed

        def counting(frame, boxes):
            crops[0] += len(boxes)
            return embed(frame, boxes)

        embedder.embed = counting
    config = tracker_config_for(detector, embedder)
    source = open_source(video)
    tracker = Tracker(config, frame_rate=source.fps, image_size=source.size)
    frames_iter = ((i, im) for i, im in source if i <= frames)
    times, boxes = [], 0
    start = time.perf_counter()
    for item in track_frames(frames_iter, detector, tracker, embedder):
        times.append(time.perf_counter())
        boxes += len(item.tracks)
    timed = times[-1] - times[9] if len(times) > 10 else times[-1] - start
    n = max(len(times) - 10, 1)
    return {
        "backend": backend,
        "appearance": appearance,
        "links": links and detector.model.config.displacement,
        "frames": len(times),
        "fps": n / timed,
        "tracked_boxes_per_frame": boxes / max(len(times), 1),
        "embedded_per_frame": crops[0] / max(len(times), 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "input": "long side " + " + ".join(map(str, detector.config.passes(*source.size))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--video", default=str(ROOT.parent / "shared/data/videos/london-crossing.mp4"))
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument(
        "--one", nargs=3, metavar=("BACKEND", "APPEARANCE", "LINKS"), help=argparse.SUPPRESS
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per configuration (median FPS)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "track_speed.md")
    args = ap.parse_args()
    if args.one:
        backend, appearance, links = args.one
        print(
            json.dumps(measure(args.video, backend, appearance == "1", links == "1", args.frames))
        )
        return
    rows = []
    runs = (
        ("torch", "1", "1"),
        ("onnxruntime", "1", "1"),
        ("torch", "0", "1"),
        ("torch", "1", "0"),
    )
    results: dict[tuple, list[dict]] = {run: [] for run in runs}
    for _ in range(args.repeat):  # the configurations take turns: drift hits them alike
        for run in runs:
            backend, appearance, links = run
            cmd = [sys.executable, __file__, "--video", args.video, "--frames", str(args.frames),
                   "--one", backend, appearance, links]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            results[run].append(json.loads(out.strip().splitlines()[-1]))
            print(results[run][-1], flush=True)
    for run in runs:
        row = dict(results[run][-1])
        row["fps"] = statistics.median(r["fps"] for r in results[run])
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results[run])
        rows.append(row)
    lines = [
        f"Date {time.strftime('%Y-%m-%d')}; {platform.machine()}, {os.cpu_count()} cores; "
        f"video {Path(args.video).name}, first {args.frames} frames (10 warm-up frames untimed); "
        f"median FPS of {args.repeat} runs per configuration, taking turns.",
        "",
        "| backend | appearance | links | FPS (decode+detect+embed+track) | boxes/frame "
        "| crops embedded/frame | peak RSS MB |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {'on' if r['appearance'] else 'off'} | "
            f"{'on' if r['links'] else 'off'} | {r['fps']:.1f} | "
            f"{r['tracked_boxes_per_frame']:.1f} | {r['embedded_per_frame']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
