"""Archives on Ray: videos per minute with 1 and 2 workers, and what chunking costs.

Part 1, throughput: the same archive (``--videos``, by default the eight shortest street
videos of ``../shared/data/videos/extra``, 1,290 frames of 360p to 822p) tracked with the
shipped models three ways, one after the other in this run: one process without Ray
(``heatrack track`` per video), ``--workers 1`` and ``--workers 2``. Wall-clock time from the
command's start to its end: Ray's start, model loading, decoding and writing included.

Part 2, chunked mode: PETS09-S2L1 (795 frames, 7 fps) tracked in one pass and with
``--chunk-frames K`` for several K (chunks overlapping by 2 s, stitched), scored by TrackEval.
The shipped detector was trained on PETS09-S2L1: these figures compare chunked with unchunked
tracking of the same sequence, they are no measure of generalisation.

    .venv/bin/pip install -e ".[ray]"
    python benchmarks/archive_scale.py --json outputs/archive_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from heatrack.eval.mot import COMBINED, evaluate, load_sequences

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SHORT_VIDEOS = ("campus-tents", "dashcam-boston", "downtown-crosswalk", "lobby-fall",
                "mall-atrium", "night-balcony", "parking-lot-group", "plaza-walkway")  # fmt: skip
PETS = DATA / "MOT15" / "train" / "PETS09-S2L1"


def heatrack(*args: str) -> float:
    """Run the CLI; wall-clock seconds."""
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-m", "heatrack", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - tic


def throughput(videos: list[Path], work: Path) -> dict:
    archive = work / "archive"
    archive.mkdir(parents=True)
    for v in videos:
        os.symlink(v.resolve(), archive / v.name)
    frames = 0
    import cv2

    for v in videos:
        cap = cv2.VideoCapture(str(v))
        frames += int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
    runs = {}
    tic = time.perf_counter()
    for v in videos:
        heatrack("track", str(v), "--output", str(work / "sequential"))
    runs["one process, no Ray"] = time.perf_counter() - tic
    for n in (1, 2):
        out = str(work / f"workers{n}")
        args = ("track", str(archive), "--output", out, "--workers", str(n))
        runs[f"--workers {n}"] = heatrack(*args)
    return {
        "videos": len(videos),
        "frames": frames,
        "seconds": runs,
        "videos_per_minute": {k: 60 * len(videos) / s for k, s in runs.items()},
    }


def chunking(work: Path, sizes: list[int]) -> dict:
    out = {}
    runs = [("single pass", [])] + [(f"chunks of {k}", ["--chunk-frames", str(k)]) for k in sizes]
    for label, extra in runs:
        folder = work / label.replace(" ", "-")
        seconds = heatrack("track", str(PETS), "--output", str(folder), "--workers", "2", *extra)
        metrics = evaluate(load_sequences(PETS.parent, folder, [PETS.name]))[COMBINED]
        out[label] = {"HOTA": metrics["HOTA"], "IDF1": metrics["IDF1"], "MOTA": metrics["MOTA"],
                      "IDSW": metrics["IDSW"], "seconds": seconds}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", nargs="+", type=Path)
    parser.add_argument("--chunks", nargs="+", type=int, default=[400, 200, 100])
    parser.add_argument("--work", type=Path, default=Path("outputs/archive_scale"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    videos = args.videos or [DATA / "videos" / "extra" / f"{n}.mp4" for n in SHORT_VIDEOS]
    shutil.rmtree(args.work, ignore_errors=True)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "throughput": throughput(videos, args.work / "throughput"),
        "chunking": chunking(args.work / "chunking", args.chunks),
    }
    t = result["throughput"]
    print(f"\n{t['videos']} videos, {t['frames']} frames")
    base = t["seconds"]["--workers 1"]
    for k, s in t["seconds"].items():
        print(f"  {k:22} {s:7.1f} s  {t['videos_per_minute'][k]:5.2f} videos/min  "
              f"{base / s:4.2f}x --workers 1")  # fmt: skip
    print("\nPETS09-S2L1 (in the shipped detector's training data)")
    single = result["chunking"]["single pass"]
    for k, m in result["chunking"].items():
        print(f"  {k:16} HOTA {m['HOTA']:.3f} ({m['HOTA'] - single['HOTA']:+.3f})  "
              f"IDF1 {m['IDF1']:.3f} ({m['IDF1'] - single['IDF1']:+.3f})  IDSW {m['IDSW']:.0f}  "
              f"{m['seconds']:.1f} s")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
